package wechatpay

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Kind is what an answer from WeChat means for the task that got it. The
// handler maps kinds to asynq's retry, archive or done; nothing outside this
// package looks at HTTP statuses or WeChat codes.
type Kind int

const (
	// KindTransient: the outcome is unknown or WeChat asked to try again
	// (5xx, 202, a redirect, network error, timeout). Retry with the same
	// out_request_no.
	KindTransient Kind = iota + 1
	// KindRateLimited: WeChat refused the call for its rate (429). Retry
	// later without spending the retry budget.
	KindRateLimited
	// KindSystemic: every call will fail the same way until an operator acts
	// (401 SIGN_ERROR: wrong key or serial, or a skewed clock). Retry later
	// without spending the retry budget.
	KindSystemic
	// KindPermanent: WeChat refused this member for good, in an answer it
	// signed and we verified (400, 403, 404). A 400 INVALID_REQUEST may be a
	// member who already holds the card: see Error.AsksForCardCheck.
	KindPermanent
	// KindUnverified: an answer that would decide the member's fate (a 2xx
	// or a refusal) whose signature does not verify with WeChat's key: a
	// forgery on the way, one of WeChat's probes, or a key configured
	// wrong. The outcome is unknown: retry with the same out_request_no,
	// never settle on it. A run of them is systemic (the breaker).
	KindUnverified
)

var kindNames = map[Kind]string{
	KindTransient:   "transient",
	KindRateLimited: "rate_limited",
	KindSystemic:    "systemic",
	KindPermanent:   "permanent",
	KindUnverified:  "unverified",
}

// String returns the snake_case name used in logs, metrics and dead letters.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is a failed import, classified. Its text names the HTTP status,
// WeChat's code and message and the request id, and never includes headers,
// the body, the openid or a key, so it is safe to log and to store as a
// task's last error.
type Error struct {
	// Kind says what the caller should do.
	Kind Kind
	// StatusCode is the HTTP status, 0 when no answer arrived.
	StatusCode int
	// Code is WeChat's error code, e.g. "PARAM_ERROR"; empty when none.
	Code string
	// Message is WeChat's explanation, with the member's openid masked.
	Message string
	// RequestID is WeChat's Request-ID header, for WeChat's support.
	RequestID string
	// Field is the JSON pointer of the offending field, when WeChat named one.
	Field string
	// Hint tells an operator what to check, for systemic faults.
	Hint string
	// Err is the underlying cause when no error answer arrived (network
	// error, timeout, failed signature check).
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("wechat pay ")
	b.WriteString(e.Kind.String())
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": http %d", e.StatusCode)
	}
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Field != "" {
		b.WriteString(" (field " + e.Field + ")")
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	if e.RequestID != "" {
		b.WriteString(" [request_id " + e.RequestID + "]")
	}
	if e.Hint != "" {
		b.WriteString("; hint: " + e.Hint)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of a classified error, or KindTransient for any
// other non-nil error: an error we cannot explain leaves the outcome
// unknown, and retrying with the same out_request_no is always safe.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindTransient
}

// hintSignError is what an operator should check when WeChat refuses our
// signature: the cause is never the member, always the configuration.
const hintSignError = "check WECHATPAY_MCH_PRIVATE_KEY_FILE matches WECHATPAY_MCH_CERT_SERIAL and WECHATPAY_MCHID, and that this host's clock is within 5 minutes of real time"

// HintUnverified is what an operator should check when WeChat's answers do
// not verify, one after another: the key we verify them with.
const HintUnverified = "check the key WeChat's answers are verified with: WECHATPAY_PUBLIC_KEY_ID and WECHATPAY_PUBLIC_KEY_FILE (public-key mode), WECHATPAY_PLATFORM_CERT_FILE (WeChat Pay's platform certificate, not the merchant's own), or WECHATPAY_APIV3_KEY_FILE (auto-download mode); a proxy on the way that rewrites answers has the same effect"

// AsksForCardCheck reports whether the refusal may be a member who already
// holds the card: a verified 400 INVALID_REQUEST. WeChat documents no
// message for that case on this endpoint, so the message is no evidence;
// WeChat's list of the member's cards is (FindCard).
func (e *Error) AsksForCardCheck() bool {
	return e.Kind == KindPermanent && e.StatusCode == http.StatusBadRequest && e.Code == codeInvalidRequest
}

const codeInvalidRequest = "INVALID_REQUEST"

// mustVerify reports whether an answer of this status decides something
// and so must carry WeChat's signature: every 2xx, and every 4xx but 401
// (WeChat did not trust the request, so it cannot sign) and 429 (which
// decides nothing final). 5xx and 3xx are retried whatever they say.
func mustVerify(status int) bool {
	switch {
	case status >= 200 && status <= 299:
		return true
	case status == http.StatusUnauthorized, status == http.StatusTooManyRequests:
		return false
	}
	return status >= 400 && status <= 499
}

// Rule is one row of the decision table: the answers it covers and what
// they mean. The table is the one place WeChat's answers are judged;
// DecisionTable returns it for the documentation.
type Rule struct {
	// Answer describes the answers the row covers, as docs show them.
	Answer string
	// Verified says whether the answer must verify before it decides;
	// one that does not is KindUnverified.
	Verified bool
	// Kind is what the answer means.
	Kind Kind
	// Then is what the worker does with it.
	Then  string
	match func(status int, code string) bool
}

// rules are tried in order; the first that matches decides.
var rules = []Rule{
	{Answer: "401, or code SIGN_ERROR", Kind: KindSystemic,
		Then:  "circuit opens at once with a hint; tasks wait, retried every 30 s without spending retries",
		match: func(s int, c string) bool { return s == http.StatusUnauthorized || c == "SIGN_ERROR" }},
	{Answer: "429, or code RATELIMIT_EXCEEDED / FREQUENCY_LIMITED", Kind: KindRateLimited,
		Then: "the fleet's rate drops for a while; retried at once, without spending retries",
		match: func(s int, c string) bool {
			return s == http.StatusTooManyRequests || c == "RATELIMIT_EXCEEDED" || c == "FREQUENCY_LIMITED"
		}},
	{Answer: "400 INVALID_REQUEST", Verified: true, Kind: KindPermanent,
		Then:  "asks WeChat for the member's cards: card listed → done, already_member with the listed code; not listed → dead letter; list fails → retried",
		match: func(s int, c string) bool { return s == http.StatusBadRequest && c == codeInvalidRequest }},
	{Answer: "408", Verified: true, Kind: KindTransient,
		Then:  "retried with backoff, under the same out_request_no",
		match: func(s int, _ string) bool { return s == http.StatusRequestTimeout }},
	{Answer: "other 4xx (400 PARAM_ERROR, 403 NO_AUTH, 404 NOT_FOUND, …)", Verified: true, Kind: KindPermanent,
		Then:  "dead letter with WeChat's status, code and message; no retry",
		match: func(s int, _ string) bool { return s >= 400 && s <= 499 }},
	{Answer: "5xx (500 SYSTEM_ERROR, 502/503 SERVICE_UNAVAILABLE)", Kind: KindTransient,
		Then:  "retried with backoff; 10 in a row open the circuit",
		match: func(s int, _ string) bool { return s >= 500 }},
	{Answer: "202, another 2xx without a card code", Verified: true, Kind: KindTransient,
		Then:  "retried with backoff, under the same out_request_no",
		match: func(s int, _ string) bool { return s >= 200 && s <= 299 }},
	{Answer: "3xx", Kind: KindTransient,
		Then:  "not followed (the signed request would go to another host); the Location's host is logged; retried",
		match: func(s int, _ string) bool { return s >= 300 && s <= 399 }},
}

// successRow and extraRows document what the status table cannot: the
// answer that imports, and outcomes that are not WeChat's judgement.
var successRow = Rule{Answer: "200 with a card code", Verified: true, Then: "done: imported, with the code"}

var extraRows = []Rule{
	{Answer: "a 2xx or 4xx above whose signature does not verify (forged, a probe, a wrong key)", Kind: KindUnverified,
		Then: "retried under the same out_request_no, never settled on; 5 in a row open the circuit with a hint naming the key settings; in auto-download mode an unknown serial first downloads the certificates (at most once a minute)"},
	{Answer: "no answer (network error, timeout)", Kind: KindTransient,
		Then: "retried with backoff; the backup host is tried at once when the production host cannot be reached; 10 in a row open the circuit"},
}

// DecisionTable returns every row of the decision: success, then the rules
// in the order they are tried, then unverified answers and no answer.
func DecisionTable() []Rule {
	return append(append([]Rule{successRow}, rules...), extraRows...)
}

// DecisionTableMarkdown renders DecisionTable as the Markdown table of
// docs/wechat-answers.md, which a test keeps equal to it.
func DecisionTableMarkdown() string {
	var b strings.Builder
	b.WriteString("| WeChat's answer | must verify | kind | what the worker does |\n|---|---|---|---|\n")
	for _, r := range DecisionTable() {
		verified, kind := "no", r.Kind.String()
		if r.Verified {
			verified = "yes"
		}
		if r.Kind == 0 {
			kind = "—"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.Answer, verified, kind, r.Then)
	}
	return b.String()
}

// classifyStatus turns an answer from WeChat into a kind. Whether the
// answer verified is decided before (mustVerify, Client.verify).
func classifyStatus(status int, code string) Kind {
	for _, r := range rules {
		if r.match(status, code) {
			return r.Kind
		}
	}
	// 1xx and anything else unexpected: the outcome is unknown, so retry
	// under the same out_request_no.
	return KindTransient
}

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
	// (5xx, 202, network error, timeout, a 2xx whose signature does not
	// verify). Retry with the same out_request_no.
	KindTransient Kind = iota + 1
	// KindRateLimited: WeChat refused the call for its rate (429). Retry
	// later without spending the retry budget.
	KindRateLimited
	// KindSystemic: every call will fail the same way until an operator acts
	// (401 SIGN_ERROR: wrong key or serial, or a skewed clock). Retry later
	// without spending the retry budget.
	KindSystemic
	// KindPermanent: WeChat refused this member for good (400, 403, 404).
	// Do not retry; set aside with the reason.
	KindPermanent
	// KindAlreadyMember: WeChat answered that the member already holds the
	// card. A success-like final outcome.
	KindAlreadyMember
)

var kindNames = map[Kind]string{
	KindTransient:     "transient",
	KindRateLimited:   "rate_limited",
	KindSystemic:      "systemic",
	KindPermanent:     "permanent",
	KindAlreadyMember: "already_member",
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

// alreadyClaimed are the phrases of WeChat's 400 INVALID_REQUEST answer that
// mean the member already holds the card (会员已经领取过该卡).
var alreadyClaimed = []string{"已经领取过", "已领取过", "already claimed"}

// hintSignError is what an operator should check when WeChat refuses our
// signature: the cause is never the member, always the configuration.
const hintSignError = "check WECHATPAY_MCH_PRIVATE_KEY_FILE matches WECHATPAY_MCH_CERT_SERIAL and WECHATPAY_MCHID, and that this host's clock is within 5 minutes of real time"

// classifyStatus turns an error answer from WeChat into a kind.
func classifyStatus(status int, code, message string) Kind {
	switch {
	case status == http.StatusBadRequest && code == "INVALID_REQUEST" && containsAny(message, alreadyClaimed):
		return KindAlreadyMember
	case status == http.StatusTooManyRequests, code == "RATELIMIT_EXCEEDED", code == "FREQUENCY_LIMITED":
		return KindRateLimited
	case status == http.StatusUnauthorized, code == "SIGN_ERROR":
		return KindSystemic
	case status >= 500, status == http.StatusAccepted, status == http.StatusRequestTimeout:
		return KindTransient
	case status >= 400:
		return KindPermanent
	}
	// Any other unexpected status (1xx, 3xx, another 2xx): the outcome is
	// unknown, so retry under the same out_request_no.
	return KindTransient
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

package tasks

import (
	"encoding/json"
	"fmt"
)

// Outcome is how an import ended, written as the task's result.
type Outcome string

const (
	// OutcomeImported means WeChat imported the card and returned its code.
	OutcomeImported Outcome = "imported"
	// OutcomeAlreadyMember means WeChat refused the import and its own list
	// of the member's cards shows the card, with the member's code. It is
	// final: the member has the card, which is what the import was for, so
	// it is never retried or dead-lettered.
	OutcomeAlreadyMember Outcome = "already_member"
	// OutcomeDead means the import failed for good: WeChat refused the
	// member in an answer we verified, a transient fault outlasted the retry
	// budget, or the payload is invalid. The task is archived and set aside
	// as a dead letter; a replay may still import it.
	OutcomeDead Outcome = "dead"
)

// Reasons an import is dead, in Result.Reason.
const (
	// ReasonPermanent: WeChat refused the member for good (400, 403, 404)
	// in an answer it signed.
	ReasonPermanent = "permanent"
	// ReasonRetriesExhausted: a transient fault (5xx, timeout, network, an
	// answer that did not verify) outlasted the retry budget.
	ReasonRetriesExhausted = "retries_exhausted"
	// ReasonInvalidPayload: the task's payload is not a valid import.
	ReasonInvalidPayload = "invalid_payload"
)

// Result is the JSON result of an import task that ended:
// {"outcome":"imported","code":"…"}, {"outcome":"already_member","code":"…"},
// or {"outcome":"dead","reason":"permanent","http_status":404,…}.
type Result struct {
	Outcome Outcome `json:"outcome"`
	// Code is the member's card code (imported, already_member).
	Code string `json:"code,omitempty"`
	// Reason is why a dead import is dead (one of the Reason… constants).
	Reason string `json:"reason,omitempty"`
	// HTTPStatus, WeChatCode and RequestID are WeChat's last answer to a
	// dead import, when it answered.
	HTTPStatus int    `json:"http_status,omitempty"`
	WeChatCode string `json:"wechat_code,omitempty"`
	RequestID  string `json:"request_id,omitempty"`
	// Message is WeChat's message (openid masked) or, without an answer,
	// what went wrong.
	Message string `json:"message,omitempty"`
}

// DecodeResult parses a task result written by the handler.
func DecodeResult(data []byte) (Result, error) {
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return Result{}, fmt.Errorf("decode result: %w", err)
	}
	switch r.Outcome {
	case OutcomeImported, OutcomeAlreadyMember, OutcomeDead:
		return r, nil
	}
	return Result{}, fmt.Errorf("decode result: unknown outcome %q", r.Outcome)
}

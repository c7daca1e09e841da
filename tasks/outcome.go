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
	// OutcomeAlreadyMember means WeChat answered that the member already
	// holds the card. It is final: the member has the card, which is what
	// the import was for, so it is never retried or dead-lettered.
	OutcomeAlreadyMember Outcome = "already_member"
)

// Result is the JSON result of a finished import task:
// {"outcome":"imported","code":"…"} or {"outcome":"already_member"}.
type Result struct {
	Outcome Outcome `json:"outcome"`
	Code    string  `json:"code,omitempty"`
}

// DecodeResult parses a task result written by the handler.
func DecodeResult(data []byte) (Result, error) {
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return Result{}, fmt.Errorf("decode result: %w", err)
	}
	switch r.Outcome {
	case OutcomeImported, OutcomeAlreadyMember:
		return r, nil
	}
	return Result{}, fmt.Errorf("decode result: unknown outcome %q", r.Outcome)
}

// Package tasks holds everything a Go program needs to put members into the
// import queue and to process them: the task type, its payload and
// validation, the constructor that sets the task's options, the handler that
// imports a member's card into WeChat Pay, and the outcome it records.
// Producer is what a registration system uses to enqueue members.
//
// The asynq task ID of every import is its out_request_no. That makes
// enqueueing idempotent (a second enqueue of the same number is refused by
// asynq as a duplicate) and means every retry sends WeChat the same
// out_request_no, so WeChat can recognise a repeat.
package tasks

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/cardimport/cardimport/results"
)

// TypeImport is the asynq task type of a member-card import.
const TypeImport = "membercard:import"

// Field limits, taken from WeChat Pay's import-by-openid API.
const (
	MaxCardIDLen       = 32
	MaxOpenIDLen       = 128
	MaxCodeLen         = 32
	MaxOutRequestNoLen = 128
)

// Payload is the body of an import task: what WeChat needs to import one
// member's card.
type Payload struct {
	// CardID is the merchant's member card (path parameter card_id).
	CardID string `json:"card_id"`
	// OpenID is the member's openid under an AppID bound to the card's brand.
	OpenID string `json:"openid"`
	// Code is the card code to assign; empty lets WeChat assign one. Only
	// cards that allocate codes in real time need it.
	Code string `json:"code,omitempty"`
	// OutRequestNo is the merchant's unique number for this import. It is
	// also the asynq task ID.
	OutRequestNo string `json:"out_request_no"`
	// Run names the run the member was handed over in (results.Run), whose
	// counts its outcome updates. Empty for a member enqueued outside any
	// run.
	Run string `json:"run,omitempty"`
}

// FieldError reports a payload field that WeChat would refuse.
type FieldError struct {
	// Field is the JSON name of the field, e.g. "out_request_no".
	Field string
	// Problem says what is wrong with its value, without repeating the value.
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// ErrInvalidPayload is matched by every error Validate and DecodePayload
// return, so callers can tell bad input from infrastructure failures.
var ErrInvalidPayload = errors.New("invalid payload")

// Is lets errors.Is(err, ErrInvalidPayload) match a FieldError.
func (e *FieldError) Is(target error) bool { return target == ErrInvalidPayload }

// Validate checks the payload against WeChat's limits and returns the first
// problem as a *FieldError. Lengths count characters, as WeChat's string(n)
// limits do.
func (p Payload) Validate() error {
	if err := checkText("card_id", p.CardID, 1, MaxCardIDLen); err != nil {
		return err
	}
	if err := checkText("openid", p.OpenID, 1, MaxOpenIDLen); err != nil {
		return err
	}
	if err := checkText("code", p.Code, 0, MaxCodeLen); err != nil {
		return err
	}
	if err := checkText("out_request_no", p.OutRequestNo, 1, MaxOutRequestNoLen); err != nil {
		return err
	}
	pos := 0
	for _, r := range p.OutRequestNo {
		pos++
		if !isOutRequestNoRune(r) {
			return &FieldError{Field: "out_request_no", Problem: fmt.Sprintf("character %q at position %d is not allowed (letters, digits and | _ * - only)", r, pos)}
		}
	}
	if p.Run != "" && results.ValidateRunID(p.Run) != nil {
		return &FieldError{Field: "run", Problem: "must be 1 to 64 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"}
	}
	return nil
}

func checkText(field, v string, minLen, maxLen int) error {
	if !utf8.ValidString(v) {
		return &FieldError{Field: field, Problem: "is not valid UTF-8"}
	}
	n := utf8.RuneCountInString(v)
	switch {
	case n == 0 && minLen > 0:
		return &FieldError{Field: field, Problem: "is required"}
	case n > maxLen:
		return &FieldError{Field: field, Problem: fmt.Sprintf("is %d characters long, at most %d allowed", n, maxLen)}
	case strings.TrimSpace(v) != v:
		return &FieldError{Field: field, Problem: "has leading or trailing white space"}
	case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return &FieldError{Field: field, Problem: "contains a control character"}
	}
	return nil
}

func isOutRequestNoRune(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	case r == '|', r == '_', r == '*', r == '-':
		return true
	}
	return false
}

// DecodePayload parses a task payload and validates it. A payload that
// cannot be decoded or is invalid returns an error matching
// ErrInvalidPayload.
func DecodePayload(data []byte) (Payload, error) {
	var p Payload
	// Unknown fields are ignored so that producers and workers of different
	// versions can share a queue.
	if err := json.Unmarshal(data, &p); err != nil {
		return Payload{}, fmt.Errorf("%w: not a JSON import payload: %v", ErrInvalidPayload, err)
	}
	if err := p.Validate(); err != nil {
		return Payload{}, err
	}
	return p, nil
}

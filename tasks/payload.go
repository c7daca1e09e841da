// Package tasks is the producer's contract with the import queue: the task
// type, its payload and the validation every way in applies, the options a
// task is created with, the Result an import ends with, and the Producer a
// Go registration system enqueues members with (in a run, whose counts and
// outcomes package results reads back). It is what another module imports,
// so it depends on asynq and go-redis only: the handler that imports a
// member and the retry policy live next to the worker (internal/importer).
//
// The asynq task ID of every import is its out_request_no. That makes
// enqueueing idempotent (a second enqueue of the same number is refused by
// asynq as a duplicate) and means every retry sends WeChat the same
// out_request_no, so WeChat can recognise a repeat.
package tasks

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/cardimport/cardimport/internal/jsonobject"
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

// Validate checks the payload against the rules WeChat applies to its
// fields and returns the first problem as a *FieldError. Every way in
// (member files, `enqueue one`, Producer and NewImportTask, the HTTP
// intake, dead-letter replays, and the worker on each payload it dequeues)
// checks a member here, so none lets through what another refuses.
//
// card_id and openid are issued by WeChat: ASCII letters, digits, '_' and
// '-' only. Anything else (a space, a zero-width character, a '.') is a
// member WeChat does not know, and a card_id of "." or ".." would even
// change the API path it is sent to. code is at most 32 ASCII letters,
// digits and punctuation; out_request_no letters, digits and | _ * -, as
// WeChat documents them. Lengths count characters, as WeChat's string(n)
// limits do.
func (p Payload) Validate() error {
	for _, f := range [...]struct {
		name, value string
		required    bool
		maxLen      int
		allowed     func(rune) bool
		alphabet    string
	}{
		{"card_id", p.CardID, true, MaxCardIDLen, isIDRune, idAlphabet},
		{"openid", p.OpenID, true, MaxOpenIDLen, isIDRune, idAlphabet},
		{"code", p.Code, false, MaxCodeLen, isCodeRune, "letters, digits and ASCII punctuation only"},
		{"out_request_no", p.OutRequestNo, true, MaxOutRequestNoLen, isOutRequestNoRune, "letters, digits and | _ * - only"},
	} {
		if err := checkField(f.name, f.value, f.required, f.maxLen, f.allowed, f.alphabet); err != nil {
			return err
		}
	}
	if p.Run != "" && results.ValidateRunID(p.Run) != nil {
		return &FieldError{Field: "run", Problem: "must be 1 to 64 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"}
	}
	return nil
}

const idAlphabet = "letters, digits, _ and - only"

// checkField checks one field's value. White space at either end gets a
// message of its own: it is the usual slip of a hand-edited file.
func checkField(field, v string, required bool, maxLen int, allowed func(rune) bool, alphabet string) error {
	if !utf8.ValidString(v) {
		return &FieldError{Field: field, Problem: "is not valid UTF-8"}
	}
	n := utf8.RuneCountInString(v)
	switch {
	case n == 0 && required:
		return &FieldError{Field: field, Problem: "is required"}
	case n > maxLen:
		return &FieldError{Field: field, Problem: fmt.Sprintf("is %d characters long, at most %d allowed", n, maxLen)}
	case strings.TrimSpace(v) != v:
		return &FieldError{Field: field, Problem: "has leading or trailing white space"}
	}
	pos := 0
	for _, r := range v {
		pos++
		if !allowed(r) {
			// %q shows a control or invisible character as an escape.
			return &FieldError{Field: field, Problem: fmt.Sprintf("character %q at position %d is not allowed (%s)", r, pos, alphabet)}
		}
	}
	return nil
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

// isIDRune says whether r may appear in a WeChat-issued id: card ids look
// like pbLatjvWOibDc5-TBnbUk1pD12o0, openids like oUpF8uMuAJO_M2pxb1Q9zNjWeS6o.
func isIDRune(r rune) bool { return isAlnum(r) || r == '_' || r == '-' }

// isCodeRune says whether r may appear in a card code: ASCII letters,
// digits and punctuation, no space.
func isCodeRune(r rune) bool { return r > ' ' && r < 0x7f }

func isOutRequestNoRune(r rune) bool {
	return isAlnum(r) || r == '|' || r == '_' || r == '*' || r == '-'
}

// payloadFields are the JSON names of Payload's fields, in its order.
var payloadFields = [...]string{"card_id", "openid", "code", "out_request_no", "run"}

// DecodePayload parses a task payload and validates it. A payload that
// cannot be decoded or is invalid returns an error matching
// ErrInvalidPayload; a problem with one field is a *FieldError naming it.
//
// Payloads come from Redis, which anyone who can write to it can fill, so
// they are read strictly (internal/jsonobject): a field given twice, in
// any letter case (encoding/json would match "OpenID" to openid and let
// the last win), a lone surrogate escape or a byte that is not UTF-8 make
// the payload invalid rather than a member other than the one enqueued.
// Unknown keys are ignored, so that producers and workers of different
// versions can share a queue.
func DecodePayload(data []byte) (Payload, error) {
	fields, err := jsonobject.Decode(data)
	var ke *jsonobject.KeyError
	var kind *jsonobject.KindError
	switch {
	case errors.As(err, &ke):
		if i := payloadField(ke.Key); i >= 0 {
			return Payload{}, &FieldError{Field: payloadFields[i], Problem: ke.Problem}
		}
		return Payload{}, fmt.Errorf("%w: %v", ErrInvalidPayload, err)
	case errors.As(err, &kind):
		return Payload{}, fmt.Errorf("%w: %v", ErrInvalidPayload, err)
	case err != nil:
		return Payload{}, fmt.Errorf("%w: not a JSON import payload: %v", ErrInvalidPayload, err)
	}
	var p Payload
	dst := [len(payloadFields)]*string{&p.CardID, &p.OpenID, &p.Code, &p.OutRequestNo, &p.Run}
	var seen [len(payloadFields)]bool
	for _, f := range fields {
		i := payloadField(f.Key)
		if i < 0 {
			continue
		}
		if seen[i] {
			return Payload{}, &FieldError{Field: payloadFields[i], Problem: jsonobject.ProblemRepeated}
		}
		seen[i] = true
		s, problem := jsonobject.String(f.Value)
		if problem != "" {
			return Payload{}, &FieldError{Field: payloadFields[i], Problem: problem}
		}
		*dst[i] = s
	}
	if err := p.Validate(); err != nil {
		return Payload{}, err
	}
	return p, nil
}

// payloadField returns the index of the field key names, matched in any
// letter case as encoding/json matches struct fields, or -1.
func payloadField(key string) int {
	for i, name := range payloadFields {
		if strings.EqualFold(key, name) {
			return i
		}
	}
	return -1
}

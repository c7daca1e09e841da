package memberfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"unicode/utf8"

	"github.com/cardimport/cardimport/tasks"
)

// jsonlDecoder turns the lines of a JSON-lines file into rows.
type jsonlDecoder struct {
	lines *lineReader
	cfg   config
}

func (d *jsonlDecoder) next() (Row, error) {
	for {
		line, num, tooLong, err := d.lines.read()
		switch {
		case err == io.EOF:
			return Row{}, io.EOF
		case err != nil:
			return Row{}, fmt.Errorf("read member file: %w", err)
		case tooLong:
			return rowError(num, "", tooLongProblem(d.cfg.maxLine), nil), nil
		case isBlankJSON(line):
			continue
		}
		p, rerr := decodeJSON(line, d.cfg.defaultCardID)
		if rerr != nil {
			rerr.Line = num
			return Row{Line: num, Err: rerr}, nil
		}
		return Row{Line: num, Payload: p}, nil
	}
}

// DecodeJSON decodes and validates one member: a JSON object with the keys
// card_id, openid, code (optional) and out_request_no, as a line of a
// JSON-lines file holds it. Values must be strings or null; a key outside
// those four is refused, so that a misspelt "code" cannot be dropped without
// a word. Only WithDefaultCardID among the options applies. A refused
// member is a *RowError with Line 0.
func DecodeJSON(data []byte, opts ...Option) (tasks.Payload, error) {
	var cfg config
	for _, opt := range opts {
		opt(&cfg)
	}
	p, err := decodeJSON(data, cfg.defaultCardID)
	if err != nil {
		return tasks.Payload{}, err
	}
	return p, nil
}

func decodeJSON(data []byte, defaultCardID string) (tasks.Payload, *RowError) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return tasks.Payload{}, &RowError{Problem: fmt.Sprintf("is not valid JSON: %v (at byte %d)", se, se.Offset), Err: err}
		case errors.As(err, &te):
			return tasks.Payload{}, &RowError{Problem: "is " + jsonKind(data) + ", want a JSON object"}
		}
		return tasks.Payload{}, &RowError{Problem: "is not valid JSON: " + err.Error(), Err: err}
	}
	if obj == nil {
		return tasks.Payload{}, &RowError{Problem: "is " + jsonKind(data) + ", want a JSON object"}
	}
	var unknown []string
	for k := range obj {
		if _, ok := lookupKey(k); !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		// Sorted, so that the same line always gets the same message.
		slices.Sort(unknown)
		return tasks.Payload{}, &RowError{Problem: fmt.Sprintf("unknown key %q (keys are %s)", unknown[0], wantColumns)}
	}
	var p tasks.Payload
	for col, dst := range [numColumns]*string{&p.CardID, &p.OpenID, &p.Code, &p.OutRequestNo} {
		raw, ok := obj[columnNames[col]]
		if !ok {
			continue
		}
		s, problem := jsonString(raw)
		if problem != "" {
			return tasks.Payload{}, &RowError{Field: columnNames[col], Problem: problem}
		}
		*dst = s
	}
	if p.CardID == "" {
		p.CardID = defaultCardID
	}
	if err := p.Validate(); err != nil {
		return tasks.Payload{}, newRowError(0, "", "", err)
	}
	return p, nil
}

// lookupKey finds a column by its JSON key. Unlike CSV headers, keys must
// match exactly: they are written by programs, not typed by people.
func lookupKey(k string) (column, bool) {
	for col, n := range columnNames {
		if k == n {
			return column(col), true
		}
	}
	return 0, false
}

// jsonString decodes a value that must be a string; null counts as absent.
func jsonString(raw json.RawMessage) (string, string) {
	switch jsonKind(raw) {
	case "null":
		return "", ""
	case "a string":
		// encoding/json would quietly turn bad bytes into U+FFFD, importing
		// a member under an openid that is not theirs.
		if !utf8.Valid(raw) {
			return "", "is not valid UTF-8"
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", "is not a valid JSON string"
		}
		return s, ""
	}
	return "", "is " + jsonKind(raw) + ", want a string"
}

// jsonKind names the kind of a valid JSON value, for messages.
func jsonKind(data []byte) string {
	i := 0
	for i < len(data) && isJSONSpace(data[i]) {
		i++
	}
	if i == len(data) {
		return "empty"
	}
	switch data[i] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func isJSONSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }

// isBlankJSON reports whether a line holds only JSON white space, which a
// JSON-lines file may use to separate records.
func isBlankJSON(line []byte) bool {
	for _, b := range line {
		if !isJSONSpace(b) {
			return false
		}
	}
	return true
}

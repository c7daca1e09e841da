package memberfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/cardimport/cardimport/internal/jsonobject"
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

// decodeJSON reads a member through jsonobject: a key given twice, a lone
// surrogate escape or a byte that is not UTF-8 make the row invalid, where
// encoding/json would let the last key win or quietly put U+FFFD in its
// place, importing a member under an openid that is not theirs.
func decodeJSON(data []byte, defaultCardID string) (tasks.Payload, *RowError) {
	fields, err := jsonobject.Decode(data)
	var se *json.SyntaxError
	var kind *jsonobject.KindError
	var ke *jsonobject.KeyError
	switch {
	case errors.As(err, &se):
		return tasks.Payload{}, &RowError{Problem: fmt.Sprintf("is not valid JSON: %v (at byte %d)", se, se.Offset), Err: err}
	case errors.As(err, &kind):
		return tasks.Payload{}, &RowError{Problem: kind.Error(), Err: err}
	case errors.As(err, &ke):
		if _, ok := lookupKey(ke.Key); ok {
			return tasks.Payload{}, &RowError{Field: ke.Key, Problem: ke.Problem, Err: err}
		}
		return tasks.Payload{}, &RowError{Problem: ke.Error(), Err: err}
	case err != nil:
		return tasks.Payload{}, &RowError{Problem: "is not valid JSON: " + err.Error(), Err: err}
	}
	var unknown []string
	for _, f := range fields {
		if _, ok := lookupKey(f.Key); !ok {
			unknown = append(unknown, f.Key)
		}
	}
	if len(unknown) > 0 {
		// Sorted, so that the same line always gets the same message.
		slices.Sort(unknown)
		return tasks.Payload{}, &RowError{Problem: fmt.Sprintf("unknown key %q (keys are %s)", unknown[0], wantColumns)}
	}
	var p tasks.Payload
	dst := [numColumns]*string{&p.CardID, &p.OpenID, &p.Code, &p.OutRequestNo}
	for _, f := range fields {
		col, _ := lookupKey(f.Key)
		s, problem := jsonobject.String(f.Value)
		if problem != "" {
			return tasks.Payload{}, &RowError{Field: f.Key, Problem: problem}
		}
		*dst[col] = s
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

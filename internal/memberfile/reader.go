// Package memberfile decodes the member files a registration system hands
// over, for `enqueue file` and the HTTP intake: CSV with a header row, or
// JSON lines, each record one member to import.
//
// Decoding streams, so memory stays flat however long the file is, and a bad
// row never stops it: each row comes back either with a payload that passed
// tasks.Payload.Validate or with a *RowError naming its line, the field and
// the problem, never the field's value (which may be an openid). Only a
// failure to read the file, or a CSV header that cannot be used, stops it.
package memberfile

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/cardimport/cardimport/tasks"
)

// Row is one record of a member file.
type Row struct {
	// Line is the 1-based number of the physical line the record starts on.
	Line int
	// Payload is the member to import. It is set only when Err is nil, and
	// then it has passed Validate.
	Payload tasks.Payload
	// Err says why the record was refused; it is a *RowError.
	Err error
}

// RowError says why a record was refused. Its message reads
// "line 7: openid: is required".
type RowError struct {
	// Line is the record's first line; 0 when the record did not come from
	// a file (DecodeJSON).
	Line int
	// Field is the column or key at fault, empty when the record as a whole
	// is (wrong number of fields, not JSON, too long).
	Field string
	// Problem says what is wrong, without repeating the value.
	Problem string
	// Err is the cause, when there is one: a *tasks.FieldError, a
	// *csv.ParseError or a *json.SyntaxError.
	Err error
}

func (e *RowError) Error() string {
	s := e.Problem
	if e.Field != "" {
		s = e.Field + ": " + s
	}
	if e.Line > 0 {
		s = "line " + strconv.Itoa(e.Line) + ": " + s
	}
	return s
}

// Unwrap returns the cause, if any.
func (e *RowError) Unwrap() error { return e.Err }

// Is lets errors.Is(err, tasks.ErrInvalidPayload) match every refused row,
// so that callers can tell bad input from failures to read it.
func (e *RowError) Is(target error) bool { return target == tasks.ErrInvalidPayload }

// ErrBadHeader is matched by the error NewReader returns when a CSV file's
// header row is missing or cannot be mapped to the payload's fields.
var ErrBadHeader = errors.New("bad header")

// Option changes how a Reader decodes rows.
type Option func(*config)

type config struct {
	defaultCardID string
	maxLine       int
}

// WithDefaultCardID supplies the card for records that do not name one: a
// CSV file without a card_id column, an empty card_id cell, or a JSON line
// whose card_id is missing, null or empty. A file for a single card can then
// leave the card out.
func WithDefaultCardID(cardID string) Option {
	return func(c *config) { c.defaultCardID = cardID }
}

// withMaxLine lowers MaxLineBytes, for tests of the limit.
func withMaxLine(n int) Option {
	return func(c *config) { c.maxLine = n }
}

// Reader decodes the records of a member file one at a time.
type Reader struct {
	dec decoder
}

// decoder decodes the records of one format.
type decoder interface {
	next() (Row, error)
}

// NewReader returns a Reader of r in the given format. For CSV it reads the
// header row at once, and an unusable header is an error matching
// ErrBadHeader. An invalid default card id is an error matching
// tasks.ErrInvalidPayload.
func NewReader(r io.Reader, format Format, opts ...Option) (*Reader, error) {
	cfg := config{maxLine: MaxLineBytes}
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.defaultCardID != "" {
		if err := checkCardID(cfg.defaultCardID); err != nil {
			return nil, fmt.Errorf("default card id: %w", err)
		}
	}
	lines := newLineReader(r, cfg.maxLine)
	switch format {
	case FormatCSV:
		d, err := newCSVDecoder(lines, cfg)
		if err != nil {
			return nil, err
		}
		return &Reader{dec: d}, nil
	case FormatJSONL:
		d := &jsonlDecoder{lines: lines, cfg: cfg}
		return &Reader{dec: d}, nil
	}
	return nil, fmt.Errorf("unknown format %q (csv, jsonl)", format)
}

// Next returns the next record. A record that cannot be imported comes back
// as a Row with Err set, and decoding goes on after it. The error is io.EOF
// at the end of the file, or the error that reading the file failed with.
func (r *Reader) Next() (Row, error) {
	return r.dec.next()
}

// checkCardID validates a card id on its own. Validate checks whole
// payloads, so the other fields get placeholders that always pass.
func checkCardID(cardID string) error {
	return tasks.Payload{CardID: cardID, OpenID: "-", OutRequestNo: "-"}.Validate()
}

// newRowError builds the refusal of the record starting on line. A
// *tasks.FieldError cause supplies the field and the problem.
func newRowError(line int, field, problem string, cause error) *RowError {
	var fe *tasks.FieldError
	if errors.As(cause, &fe) {
		field, problem = fe.Field, fe.Problem
	}
	return &RowError{Line: line, Field: field, Problem: problem, Err: cause}
}

// rowError is the Row of a refused record.
func rowError(line int, field, problem string, cause error) Row {
	return Row{Line: line, Err: newRowError(line, field, problem, cause)}
}

// tooLongProblem is the problem of a line over the limit.
func tooLongProblem(maxLine int) string {
	return fmt.Sprintf("is longer than %d bytes", maxLine)
}

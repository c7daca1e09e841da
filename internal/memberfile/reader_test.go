package memberfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/tasks"
)

const header = "card_id,openid,code,out_request_no\n"

// describe renders a row for comparison: "line 2: ok card|openid|code|no"
// for a member, the error's message for a refused record.
func describe(t *testing.T, row Row) string {
	t.Helper()
	if row.Err != nil {
		var re *RowError
		require.ErrorAs(t, row.Err, &re)
		require.Equal(t, row.Line, re.Line, "the error's line is the row's")
		require.ErrorIs(t, row.Err, tasks.ErrInvalidPayload)
		require.Zero(t, row.Payload, "a refused row carries no payload")
		return row.Err.Error()
	}
	require.NoError(t, row.Payload.Validate())
	p := row.Payload
	return fmt.Sprintf("line %d: ok %s|%s|%s|%s", row.Line, p.CardID, p.OpenID, p.Code, p.OutRequestNo)
}

// readAll decodes input to the end and describes every row.
func readAll(t *testing.T, input string, format Format, opts ...Option) []string {
	t.Helper()
	r, err := NewReader(strings.NewReader(input), format, opts...)
	require.NoError(t, err)
	var got []string
	for {
		row, err := r.Next()
		if err == io.EOF {
			return got
		}
		require.NoError(t, err)
		got = append(got, describe(t, row))
	}
}

func TestCSVRows(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 100)
	tests := []struct {
		name  string
		input string
		opts  []Option
		want  []string
	}{
		{
			name:  "valid rows",
			input: header + "c1,o1,,n1\nc1,o2,code2,n2\n",
			want:  []string{"line 2: ok c1|o1||n1", "line 3: ok c1|o2|code2|n2"},
		},
		{
			name:  "columns in any order, any case, padded, without code",
			input: " OUT_REQUEST_NO ,OpenID,Card_ID\nn1,o1,c1\n",
			want:  []string{"line 2: ok c1|o1||n1"},
		},
		{
			name:  "CRLF line endings and no final newline",
			input: "card_id,openid,code,out_request_no\r\nc1,o1,,n1\r\nc1,o2,,n2",
			want:  []string{"line 2: ok c1|o1||n1", "line 3: ok c1|o2||n2"},
		},
		{
			name:  "blank lines are skipped and still counted",
			input: "\n" + header + "\nc1,o1,,n1\n\r\n\nc1,o2,,n2\n\n",
			want:  []string{"line 4: ok c1|o1||n1", "line 7: ok c1|o2||n2"},
		},
		{
			name:  "byte order mark",
			input: "\ufeff" + header + "c1,o1,,n1\n",
			want:  []string{"line 2: ok c1|o1||n1"},
		},
		{
			name:  "byte order mark alone on the first line",
			input: "\ufeff\n" + header + "c1,o1,,n1\n",
			want:  []string{"line 3: ok c1|o1||n1"},
		},
		{
			name:  "quoted fields",
			input: header + `"c1","o1","co""d,e","n1"` + "\n",
			want:  []string{`line 2: ok c1|o1|co"d,e|n1`},
		},
		{
			name:  "missing openid",
			input: header + "c1,,,n1\nc1,o2,,n2\n",
			want:  []string{"line 2: openid: is required", "line 3: ok c1|o2||n2"},
		},
		{
			name:  "bad out_request_no character",
			input: header + "c1,o1,,order#1\n",
			want:  []string{`line 2: out_request_no: character '#' at position 6 is not allowed (letters, digits and | _ * - only)`},
		},
		{
			name:  "overlong card_id",
			input: header + strings.Repeat("c", 33) + ",o1,,n1\n",
			want:  []string{"line 2: card_id: is 33 characters long, at most 32 allowed"},
		},
		{
			name:  "white space around a value",
			input: header + "c1, o1,,n1\n",
			want:  []string{"line 2: openid: has leading or trailing white space"},
		},
		{
			name:  "bad UTF-8",
			input: header + "c1,o\xff1,,n1\nc1,o2,,n2\n",
			want:  []string{"line 2: openid: is not valid UTF-8", "line 3: ok c1|o2||n2"},
		},
		{
			// WeChat issues card ids and openids of letters, digits, _
			// and -; a dot-dot card id would change the API path.
			name:  "characters WeChat ids never hold",
			input: header + "..,o1,,n1\nc1,o\u200b1,,n2\nc1,o 1,,n3\nc1,o1,k 1,n4\n",
			want: []string{
				`line 2: card_id: character '.' at position 1 is not allowed (letters, digits, _ and - only)`,
				`line 3: openid: character '\u200b' at position 2 is not allowed (letters, digits, _ and - only)`,
				`line 4: openid: character ' ' at position 2 is not allowed (letters, digits, _ and - only)`,
				`line 5: code: character ' ' at position 2 is not allowed (letters, digits and ASCII punctuation only)`,
			},
		},
		{
			name:  "too few and too many fields",
			input: header + "c1,o1,n1\nc1,o2,,n2,extra\nc1,o3,,n3\n",
			want: []string{
				"line 2: has 3 fields, the header has 4",
				"line 3: has 5 fields, the header has 4",
				"line 4: ok c1|o3||n3",
			},
		},
		{
			name:  "bare quote",
			input: header + "c1,o\"1,,n1\nc1,o2,,n2\n",
			want:  []string{`line 2: openid: bare " in non-quoted-field`, "line 3: ok c1|o2||n2"},
		},
		{
			name:  "text after a closing quote",
			input: header + "c1,\"o1\"x,,n1\nc1,o2,,n2\n",
			want:  []string{`line 2: openid: extraneous or missing " in quoted-field`, "line 3: ok c1|o2||n2"},
		},
		{
			name:  "broken quote beyond the header's fields",
			input: header + "c1,o1,,n1,x\"y\n",
			want:  []string{`line 2: field 5: bare " in non-quoted-field`},
		},
		{
			// The quote opened on line 2 runs on until line 4's quote,
			// which csv then finds followed by text. Lines 3 and 4 are
			// decoded again on their own.
			name:  "stray opening quote resyncs on the next line",
			input: header + "c1,\"o1,,n1\nc1,o2,,n2\nc1,o3,,\"n3\"x\nc1,o4,,n4\n",
			want: []string{
				`line 2: openid: extraneous or missing " in quoted-field (the record runs on to line 4)`,
				"line 3: ok c1|o2||n2",
				`line 4: out_request_no: extraneous or missing " in quoted-field`,
				"line 5: ok c1|o4||n4",
			},
		},
		{
			name:  "stray opening quote that closes into a short record",
			input: header + "c1,\"o1,,n1\nc1,o2,,n2\"\nc1,o3,,n3\n",
			want: []string{
				"line 2: has 2 fields, the header has 4 (the record runs on to line 3)",
				`line 3: out_request_no: bare " in non-quoted-field`,
				"line 4: ok c1|o3||n3",
			},
		},
		{
			name:  "quote left open to the end of the file",
			input: header + "c1,o1,,n1\nc1,\"o2,,n2\nc1,o3,,n3\nc1,o4,,n4\n",
			want: []string{
				"line 2: ok c1|o1||n1",
				`line 3: openid: extraneous or missing " in quoted-field (the record runs on to line 5)`,
				"line 4: ok c1|o3||n3",
				"line 5: ok c1|o4||n4",
			},
		},
		{
			name:  "quote left open on the last line",
			input: header + "c1,o1,,\"n1",
			want:  []string{`line 2: out_request_no: extraneous or missing " in quoted-field`},
		},
		{
			// A well-formed record may span lines; it is reported on the
			// line it starts on, and no openid holds a newline.
			name:  "quoted field over several lines",
			input: header + "c1,\"o\n\n1\",,n1\nc1,o2,,n2\n",
			want:  []string{`line 2: openid: character '\n' at position 2 is not allowed (letters, digits, _ and - only)`, "line 5: ok c1|o2||n2"},
		},
		{
			name:  "default card id for a file without the column",
			input: "openid,out_request_no\no1,n1\n",
			opts:  []Option{WithDefaultCardID("dflt")},
			want:  []string{"line 2: ok dflt|o1||n1"},
		},
		{
			name:  "default card id fills empty cells only",
			input: header + ",o1,,n1\nc2,o2,,n2\n",
			opts:  []Option{WithDefaultCardID("dflt")},
			want:  []string{"line 2: ok dflt|o1||n1", "line 3: ok c2|o2||n2"},
		},
		{
			name:  "line over the limit",
			input: header + "c1," + long + ",,n1\nc1,o2,,n2\n",
			opts:  []Option{withMaxLine(64)},
			want:  []string{"line 2: is longer than 64 bytes", "line 3: ok c1|o2||n2"},
		},
		{
			// The open quote on line 2 meets the overlong line 3: the
			// record is refused, and line 3 is reported on its own.
			name:  "line over the limit inside a quoted field",
			input: header + "c1,\"o1,,n1\n" + long + "\nc1,o3,,n3\n",
			opts:  []Option{withMaxLine(64)},
			want: []string{
				`line 2: openid: extraneous or missing " in quoted-field`,
				"line 3: is longer than 64 bytes",
				"line 4: ok c1|o3||n3",
			},
		},
		{
			name:  "record over the limit",
			input: header + "c1,\"o1,,n1\n" + strings.Repeat("c1,o,,n\n", 10) + "c1,o9,,n9\n",
			opts:  []Option{withMaxLine(64)},
			want: append(append([]string{
				`line 2: openid: extraneous or missing " in quoted-field (the record runs on to line 9)`},
				repeatRows(3, 10, "line %d: ok c1|o||n")...),
				"line 13: ok c1|o9||n9"),
		},
		{
			name:  "header only",
			input: header,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, readAll(t, tt.input, FormatCSV, tt.opts...))
		})
	}
}

func repeatRows(first, n int, format string) []string {
	var rows []string
	for i := range n {
		rows = append(rows, fmt.Sprintf(format, first+i))
	}
	return rows
}

func TestCSVLineOverOneMiB(t *testing.T) {
	t.Parallel()
	input := header + "c1,o1,,n1\nc1," + strings.Repeat("o", MaxLineBytes) + ",,n2\nc1,o3,,n3\n"
	require.Equal(t, []string{
		"line 2: ok c1|o1||n1",
		"line 3: is longer than 1048576 bytes",
		"line 4: ok c1|o3||n3",
	}, readAll(t, input, FormatCSV))
}

func TestCSVHeaderErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		input string
		opts  []Option
		want  string
	}{
		{name: "empty file", input: "", want: "bad header: the file is empty, want a header row naming the columns card_id, openid, code, out_request_no"},
		{name: "blank lines only", input: "\n\r\n", want: "bad header: the file is empty, want a header row naming the columns card_id, openid, code, out_request_no"},
		{name: "unknown column", input: "card_id,openid,phone,out_request_no\n", want: `bad header: unknown column "phone" (columns are card_id, openid, code, out_request_no)`},
		{name: "no header row", input: "pLcard0001,oUser0000000001,,order-1\n", want: "bad header: line 1 names none of the columns card_id, openid, code, out_request_no; is the header row missing?"},
		{name: "column without a name", input: "card_id,openid,,out_request_no\n", want: "bad header: column 3 has no name (columns are card_id, openid, code, out_request_no)"},
		{name: "column twice", input: "card_id,openid,OpenID,out_request_no\n", want: `bad header: column "openid" appears twice`},
		{name: "missing openid", input: "card_id,code,out_request_no\n", want: `bad header: missing column "openid"`},
		{name: "missing out_request_no", input: "card_id,openid\n", want: `bad header: missing column "out_request_no"`},
		{name: "missing card_id", input: "openid,out_request_no\n", want: `bad header: missing column "card_id" (or give a default card id)`},
		{name: "broken quote", input: "card_id,\"openid\"x,out_request_no\n", want: `bad header: line 1: extraneous or missing " in quoted-field`},
		{name: "header too long", input: "card_id," + strings.Repeat("x", 100) + "\n", opts: []Option{withMaxLine(64)}, want: "bad header: line 1 is longer than 64 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewReader(strings.NewReader(tt.input), FormatCSV, tt.opts...)
			require.ErrorIs(t, err, ErrBadHeader)
			require.EqualError(t, err, tt.want)
		})
	}
}

func TestNewReaderRefusesBadDefaultCardID(t *testing.T) {
	t.Parallel()
	_, err := NewReader(strings.NewReader(header), FormatCSV, WithDefaultCardID(strings.Repeat("c", 33)))
	require.ErrorIs(t, err, tasks.ErrInvalidPayload)
	require.EqualError(t, err, "default card id: card_id: is 33 characters long, at most 32 allowed")
}

func TestJSONLRows(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		input string
		opts  []Option
		want  []string
	}{
		{
			name:  "valid lines, blank lines skipped",
			input: `{"card_id":"c1","openid":"o1","out_request_no":"n1"}` + "\n\n  \t\r\n" + `{"out_request_no":"n2","code":"k2","openid":"o2","card_id":"c1"}`,
			want:  []string{"line 1: ok c1|o1||n1", "line 4: ok c1|o2|k2|n2"},
		},
		{
			name:  "CRLF and byte order mark",
			input: "\ufeff" + `{"card_id":"c1","openid":"o1","out_request_no":"n1"}` + "\r\n",
			want:  []string{"line 1: ok c1|o1||n1"},
		},
		{
			name:  "null is absent",
			input: `{"card_id":"c1","openid":"o1","code":null,"out_request_no":"n1"}`,
			want:  []string{"line 1: ok c1|o1||n1"},
		},
		{
			name:  "escapes",
			input: `{"card_id":"c\u0031","openid":"o\u005f1","code":"k\/1","out_request_no":"n1"}`,
			want:  []string{"line 1: ok c1|o_1|k/1|n1"},
		},
		{
			name:  "invalid JSON",
			input: "{\"card_id\":\"c1\",openid}\n" + `{"card_id":"c1","openid":"o2","out_request_no":"n2"}`,
			want: []string{
				"line 1: is not valid JSON: invalid character 'o' looking for beginning of object key string (at byte 17)",
				"line 2: ok c1|o2||n2",
			},
		},
		{
			name:  "truncated line",
			input: `{"card_id":"c1","openid":"o1"`,
			want:  []string{"line 1: is not valid JSON: unexpected end of JSON input (at byte 29)"},
		},
		{
			name:  "values that are not objects",
			input: "[1,2]\n\"member\"\n42\ntrue\nnull\n",
			want: []string{
				"line 1: is an array, want a JSON object",
				"line 2: is a string, want a JSON object",
				"line 3: is a number, want a JSON object",
				"line 4: is a boolean, want a JSON object",
				"line 5: is null, want a JSON object",
			},
		},
		{
			name: "fields of the wrong type",
			input: `{"card_id":"c1","openid":12345,"out_request_no":"n1"}` + "\n" +
				`{"card_id":["c1"],"openid":"o2","out_request_no":"n2"}` + "\n" +
				`{"card_id":"c1","openid":"o3","out_request_no":{"n":3}}` + "\n" +
				`{"card_id":"c1","openid":"o4","code":false,"out_request_no":"n4"}`,
			want: []string{
				"line 1: openid: is a number, want a string",
				"line 2: card_id: is an array, want a string",
				"line 3: out_request_no: is an object, want a string",
				"line 4: code: is a boolean, want a string",
			},
		},
		{
			name:  "unknown keys",
			input: `{"card_id":"c1","openid":"o1","out_request_no":"n1","zone":"x","card_code":"k1"}`,
			want:  []string{`line 1: unknown key "card_code" (keys are card_id, openid, code, out_request_no)`},
		},
		{
			name:  "keys are case-sensitive",
			input: `{"card_id":"c1","OpenID":"o1","out_request_no":"n1"}`,
			want:  []string{`line 1: unknown key "OpenID" (keys are card_id, openid, code, out_request_no)`},
		},
		{
			name:  "bad UTF-8",
			input: "{\"card_id\":\"c1\",\"openid\":\"o\xff1\",\"out_request_no\":\"n1\"}",
			want:  []string{"line 1: openid: is not valid UTF-8"},
		},
		{
			// encoding/json would read each of these as a member other
			// than the one written: U+FFFD for the lone surrogate, the
			// last value for a repeated key.
			name: "JSON that would change what it says",
			input: `{"card_id":"c1","openid":"o\ud800x","out_request_no":"n1"}` + "\n" +
				`{"card_id":"c1","openid":"o\udc00","out_request_no":"n2"}` + "\n" +
				`{"card_id":"c1","openid":"o3","openid":"o4","out_request_no":"n3"}` + "\n" +
				`{"card_id":"c1","openid":"o5","open\u0069d":"o6","out_request_no":"n5"}` + "\n" +
				`{"card_id":"c1","openid":"o\ud83d\ude00","out_request_no":"n6"}` + "\n" +
				`{"card_id":"c1","openid":"o7","out_request_no":"n7","x\ud800":1}`,
			want: []string{
				`line 1: openid: has an unpaired UTF-16 surrogate escape (\ud800)`,
				`line 2: openid: has an unpaired UTF-16 surrogate escape (\udc00)`,
				"line 3: openid: is given more than once",
				"line 4: openid: is given more than once",
				`line 5: openid: character '😀' at position 2 is not allowed (letters, digits, _ and - only)`,
				"line 6: key \"x\ufffd\": the key has an unpaired UTF-16 surrogate escape (\\ud800)",
			},
		},
		{
			name: "validation errors",
			input: `{"card_id":"c1","out_request_no":"n1"}` + "\n" +
				`{"card_id":"c1","openid":"o2","out_request_no":"n 2"}` + "\n" +
				`{"card_id":"c1","openid":"o3","code":"` + strings.Repeat("k", 33) + `","out_request_no":"n3"}`,
			want: []string{
				"line 1: openid: is required",
				"line 2: out_request_no: character ' ' at position 2 is not allowed (letters, digits and | _ * - only)",
				"line 3: code: is 33 characters long, at most 32 allowed",
			},
		},
		{
			name:  "default card id",
			input: `{"openid":"o1","out_request_no":"n1"}` + "\n" + `{"card_id":"","openid":"o2","out_request_no":"n2"}` + "\n" + `{"card_id":"c3","openid":"o3","out_request_no":"n3"}`,
			opts:  []Option{WithDefaultCardID("dflt")},
			want:  []string{"line 1: ok dflt|o1||n1", "line 2: ok dflt|o2||n2", "line 3: ok c3|o3||n3"},
		},
		{
			name:  "line over the limit",
			input: `{"card_id":"c1","openid":"` + strings.Repeat("o", 100) + `","out_request_no":"n1"}` + "\n" + `{"card_id":"c1","openid":"o2","out_request_no":"n2"}`,
			opts:  []Option{withMaxLine(64)},
			want:  []string{"line 1: is longer than 64 bytes", "line 2: ok c1|o2||n2"},
		},
		{
			name:  "empty file",
			input: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, readAll(t, tt.input, FormatJSONL, tt.opts...))
		})
	}
}

func TestJSONLLineOverOneMiB(t *testing.T) {
	t.Parallel()
	input := strings.Repeat(" ", 3*MaxLineBytes) + "\n" + `{"card_id":"c1","openid":"o2","out_request_no":"n2"}` + "\n"
	require.Equal(t, []string{
		"line 1: is longer than 1048576 bytes",
		"line 2: ok c1|o2||n2",
	}, readAll(t, input, FormatJSONL))
}

// failingReader returns its data, then err.
type failingReader struct {
	data io.Reader
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	n, err := r.data.Read(p)
	if err == io.EOF {
		return n, r.err
	}
	return n, err
}

func TestReadErrorStopsTheStream(t *testing.T) {
	t.Parallel()
	errDisk := errors.New("disk on fire")
	tests := []struct {
		name   string
		format Format
		input  string
		want   string
	}{
		{name: "csv", format: FormatCSV, input: header + "c1,o1,,n1\nc1,o2", want: "line 2: ok c1|o1||n1"},
		{name: "jsonl", format: FormatJSONL, input: `{"card_id":"c1","openid":"o1","out_request_no":"n1"}` + "\n{\"card_id\"", want: "line 1: ok c1|o1||n1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := NewReader(&failingReader{data: strings.NewReader(tt.input), err: errDisk}, tt.format)
			require.NoError(t, err)
			row, err := r.Next()
			require.NoError(t, err)
			require.Equal(t, tt.want, describe(t, row))
			_, err = r.Next()
			require.ErrorIs(t, err, errDisk)
			require.EqualError(t, err, "read member file: disk on fire")
			_, err = r.Next()
			require.ErrorIs(t, err, errDisk, "the error sticks")
		})
	}
}

func TestCSVHeaderReadError(t *testing.T) {
	t.Parallel()
	_, err := NewReader(&failingReader{data: strings.NewReader("card_id,op"), err: io.ErrUnexpectedEOF}, FormatCSV)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	require.NotErrorIs(t, err, ErrBadHeader)
}

func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	p, err := DecodeJSON([]byte(`{"openid":"o1","out_request_no":"n1"}`), WithDefaultCardID("c1"))
	require.NoError(t, err)
	require.Equal(t, tasks.Payload{CardID: "c1", OpenID: "o1", OutRequestNo: "n1"}, p)

	_, err = DecodeJSON([]byte(`{"card_id":"c1","out_request_no":"n1"}`))
	require.EqualError(t, err, "openid: is required")
	require.ErrorIs(t, err, tasks.ErrInvalidPayload)
	var fe *tasks.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "openid", fe.Field)
}

func TestFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path string
		want Format
	}{
		{"members.csv", FormatCSV},
		{"members.CSV", FormatCSV},
		{"members.txt", FormatCSV},
		{"-", FormatCSV},
		{"members.jsonl", FormatJSONL},
		{"dir.d/members.NDJSON", FormatJSONL},
		{"members.json", FormatJSONL},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			require.Equal(t, tt.want, FormatFromPath(tt.path))
		})
	}
	f, err := ParseFormat("JSONL")
	require.NoError(t, err)
	require.Equal(t, FormatJSONL, f)
	_, err = ParseFormat("xml")
	require.EqualError(t, err, `unknown format "xml" (csv, jsonl)`)
}

func TestMemoryStaysFlat(t *testing.T) {
	t.Parallel()
	// Streams far longer than any buffer, some of them hostile: the
	// decoder's buffers must stay at the size of one record.
	tests := []struct {
		name  string
		input func(w io.Writer)
	}{
		{name: "members", input: func(w io.Writer) {
			for i := range 100_000 {
				fmt.Fprintf(w, "card1,oUser%06d,,n%06d\n", i, i)
			}
		}},
		{name: "blank lines", input: func(w io.Writer) {
			_, _ = w.Write(bytes.Repeat([]byte("\n"), 4*MaxLineBytes))
		}},
		{name: "a stray quote every few lines", input: func(w io.Writer) {
			for i := range 100_000 {
				if i%7 == 0 {
					fmt.Fprintf(w, "card1,\"oUser%06d,,n%06d\n", i, i)
				} else {
					fmt.Fprintf(w, "card1,oUser%06d,,n%06d\n", i, i)
				}
			}
		}},
		{name: "a quote left open", input: func(w io.Writer) {
			fmt.Fprintf(w, "card1,\"o,,n\n")
			for i := range 200_000 {
				fmt.Fprintf(w, "card1,oUser%06d,,n%06d\n", i, i)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pr, pw := io.Pipe()
			go func() {
				_, _ = io.WriteString(pw, header)
				tt.input(pw)
				pw.Close()
			}()
			r, err := NewReader(pr, FormatCSV)
			require.NoError(t, err)
			d := r.dec.(*csvDecoder)
			var maxRec, maxPending int
			last := 0
			for {
				row, err := r.Next()
				if err == io.EOF {
					break
				}
				require.NoError(t, err)
				require.Greater(t, row.Line, last)
				last = row.Line
				maxRec = max(maxRec, cap(d.feed.rec))
				maxPending = max(maxPending, cap(d.feed.lines.pending))
			}
			require.LessOrEqual(t, maxRec, 2*MaxLineBytes+64<<10)
			require.LessOrEqual(t, maxPending, 2*MaxLineBytes+64<<10)
		})
	}
}

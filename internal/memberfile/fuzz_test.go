package memberfile

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzCSVRows feeds arbitrary rows under a valid header. The decoder must
// not panic or stop early, every row must be a valid member or a refusal
// naming its line, lines must increase and stay within the input, and where
// encoding/csv reads the whole input without a syntax error, the decoder
// must find the same records on the same lines.
func FuzzCSVRows(f *testing.F) {
	for _, seed := range []string{
		"c1,o1,,n1\n",
		"c1,o1,k1,n1\r\nc1,o2,,n2",
		"c1,\"o,1\",\"k\"\"1\",n1\n",
		"c1,,,n1\nc1,o2,n2\nc1,o\"3,,n3\n",
		"c1,\"o1,,n1\nc1,o2,,n2\nc1,o3,,\"n3\"x\n",
		"c1,\"o\n1\",,n1\n\n\nc1,o2,,n2\n",
		"c1,o\xff,,n1\n",
		"c1,\"o1,,n1",
		"\"\n\"\"\n\"\"\"\n",
		"c1," + strings.Repeat("o", 40) + ",,n1\n",
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, rows []byte, small bool) {
		input := append([]byte(header), rows...)
		var opts []Option
		if small {
			opts = append(opts, withMaxLine(40))
		}
		r, err := NewReader(bytes.NewReader(input), FormatCSV, opts...)
		require.NoError(t, err)
		got := checkRows(t, r, input, 2)
		if small {
			return
		}
		if want, ok := csvRecordLines(input); ok {
			require.Equal(t, want, got, "records differ from encoding/csv's")
		}
	})
}

// FuzzJSONLRows feeds arbitrary JSON lines, with the checks of FuzzCSVRows.
func FuzzJSONLRows(f *testing.F) {
	for _, seed := range []string{
		`{"card_id":"c1","openid":"o1","out_request_no":"n1"}`,
		`{"card_id":"c1","openid":"o1","code":null,"out_request_no":"n1"}` + "\r\n\n",
		"{\"card_id\":\"c1\",openid}\n[1]\n\"s\"\n1\nnull\ntrue\n",
		`{"card_id":"c1","openid":5,"out_request_no":"n1","x":1}`,
		"{\"card_id\":\"c1\",\"openid\":\"o\xff\",\"out_request_no\":\"n1\"}",
		`{"card_id":"c1","openid":"o\u0000","out_request_no":"n 1"}`,
		"\ufeff{}\n{",
		`{"card_id":"c1","openid":"o\ud800","out_request_no":"n1"}` + "\n" + `{"card_id":"c1","openid":"o1","openid":"o2","out_request_no":"n2"}`,
		`{"card_id":"..","openid":"o\u200b1","code":"k 1","out_request_no":"n1"}`,
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, input []byte, small bool) {
		var opts []Option
		if small {
			opts = append(opts, withMaxLine(40))
		}
		r, err := NewReader(bytes.NewReader(input), FormatJSONL, opts...)
		require.NoError(t, err)
		checkRows(t, r, input, 1)
	})
}

// checkRows reads r to the end, checks the invariants every row must keep,
// and returns the rows' line numbers.
func checkRows(t *testing.T, r *Reader, input []byte, firstLine int) []int {
	t.Helper()
	total := lineCount(input)
	var lines []int
	for {
		row, err := r.Next()
		if err == io.EOF {
			return lines
		}
		require.NoError(t, err, "only a failing reader may stop the stream")
		if row.Err != nil {
			var re *RowError
			require.ErrorAs(t, row.Err, &re)
			require.Equal(t, row.Line, re.Line)
			require.True(t, strings.HasPrefix(row.Err.Error(), "line "+strconv.Itoa(row.Line)+": "), row.Err.Error())
			require.Zero(t, row.Payload)
		} else {
			require.NoError(t, row.Payload.Validate())
		}
		require.GreaterOrEqual(t, row.Line, firstLine)
		require.LessOrEqual(t, row.Line, total)
		if len(lines) > 0 {
			require.Greater(t, row.Line, lines[len(lines)-1])
		}
		lines = append(lines, row.Line)
	}
}

// lineCount is the number of physical lines in input, counting a last line
// without a newline.
func lineCount(input []byte) int {
	n := bytes.Count(input, []byte("\n"))
	if len(input) > 0 && input[len(input)-1] != '\n' {
		n++
	}
	return n
}

// csvRecordLines returns the lines on which encoding/csv finds the records
// after the header, and false if it meets a syntax error or a record whose
// field count differs from the header's (which the decoder treats as a sign
// of a stray quote and decodes again line by line).
func csvRecordLines(input []byte) ([]int, bool) {
	cr := csv.NewReader(bytes.NewReader(input))
	cr.FieldsPerRecord = -1
	if _, err := cr.Read(); err != nil {
		return nil, false
	}
	var lines []int
	for {
		record, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return lines, true
		}
		if err != nil || len(record) != int(numColumns) {
			return nil, false
		}
		line, _ := cr.FieldPos(0)
		lines = append(lines, line)
	}
}

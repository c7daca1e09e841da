package memberfile

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/cardimport/cardimport/tasks"
)

// column is the payload field a CSV column holds.
type column int

const (
	colCardID column = iota
	colOpenID
	colCode
	colOutRequestNo
	numColumns
)

// columnNames are the header names of the columns, which are also the
// payload's JSON names, so that messages name a field the same way whatever
// the format.
var columnNames = [numColumns]string{"card_id", "openid", "code", "out_request_no"}

const wantColumns = "card_id, openid, code, out_request_no"

// csvDecoder turns CSV records into rows.
//
// encoding/csv alone cannot recover from a stray quote: the quoted field it
// opens runs on through the following lines, swallowing their members, up to
// the next quote or the end of the file. So records are fed to it through a
// csvFeeder, which hands over one line at a time, keeps the lines of the
// record in progress and cuts off a record that grows too long. When a
// record spanning several lines turns out broken, its lines after the first
// are pushed back and decoded again as records of their own: a stray quote
// costs its own line, not the rest of the file.
type csvDecoder struct {
	cfg     config
	feed    *csvFeeder
	cr      *csv.Reader
	columns []column
}

func newCSVDecoder(lines *lineReader, cfg config) (*csvDecoder, error) {
	feed := &csvFeeder{lines: lines, maxRecord: cfg.maxLine}
	cr := csv.NewReader(feed)
	// A wrong number of fields is a bad row, reported with the header's
	// count, not an error that csv should judge against the first record.
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	d := &csvDecoder{cfg: cfg, feed: feed, cr: cr}
	if err := d.readHeader(); err != nil {
		return nil, err
	}
	return d, nil
}

// read reads one record through a fresh feed.
func (d *csvDecoder) read() ([]string, error) {
	d.feed.reset()
	return d.cr.Read()
}

func (d *csvDecoder) readHeader() error {
	names, err := d.read()
	var pe *csv.ParseError
	switch {
	case d.feed.err != nil:
		return fmt.Errorf("read header: %w", d.feed.err)
	case d.feed.tooLong != 0:
		return fmt.Errorf("%w: line %d %s", ErrBadHeader, d.feed.tooLong, tooLongProblem(d.cfg.maxLine))
	case err == io.EOF:
		return fmt.Errorf("%w: the file is empty, want a header row naming the columns %s", ErrBadHeader, wantColumns)
	case errors.As(err, &pe):
		return fmt.Errorf("%w: line %d: %v", ErrBadHeader, d.feed.start, pe.Err)
	case err != nil:
		return fmt.Errorf("%w: line %d: %v", ErrBadHeader, d.feed.start, err)
	}
	if !slices.ContainsFunc(names, func(name string) bool {
		_, ok := lookupColumn(strings.TrimSpace(name))
		return ok
	}) {
		// Most likely a file without its header row. Its first line is
		// then a member, so its values (an openid) must not be echoed.
		return fmt.Errorf("%w: line %d names none of the columns %s; is the header row missing?", ErrBadHeader, d.feed.start, wantColumns)
	}
	var seen [numColumns]bool
	for i, name := range names {
		name = strings.TrimSpace(name)
		col, ok := lookupColumn(name)
		switch {
		case name == "":
			return fmt.Errorf("%w: column %d has no name (columns are %s)", ErrBadHeader, i+1, wantColumns)
		case !ok:
			return fmt.Errorf("%w: unknown column %q (columns are %s)", ErrBadHeader, name, wantColumns)
		case seen[col]:
			return fmt.Errorf("%w: column %q appears twice", ErrBadHeader, columnNames[col])
		}
		seen[col] = true
		d.columns = append(d.columns, col)
	}
	for _, col := range []column{colCardID, colOpenID, colOutRequestNo} {
		if seen[col] || col == colCardID && d.cfg.defaultCardID != "" {
			continue
		}
		if col == colCardID {
			return fmt.Errorf("%w: missing column %q (or give a default card id)", ErrBadHeader, columnNames[col])
		}
		return fmt.Errorf("%w: missing column %q", ErrBadHeader, columnNames[col])
	}
	return nil
}

// lookupColumn finds a column by its header name, in any case: headers are
// often typed by hand in a spreadsheet.
func lookupColumn(name string) (column, bool) {
	for col, n := range columnNames {
		if strings.EqualFold(name, n) {
			return column(col), true
		}
	}
	return 0, false
}

func (d *csvDecoder) next() (Row, error) {
	fields, err := d.read()
	f := d.feed
	switch {
	case f.err != nil:
		return Row{}, fmt.Errorf("read member file: %w", f.err)
	case f.tooLong != 0:
		return rowError(f.tooLong, "", tooLongProblem(d.cfg.maxLine), nil), nil
	case err == io.EOF:
		return Row{}, io.EOF
	}
	if err != nil {
		problem := err.Error()
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			problem = pe.Err.Error()
		}
		// The partial record holds the fields before the broken one.
		return d.refuseRecord(d.fieldName(len(fields)), problem, err), nil
	}
	if len(fields) != len(d.columns) {
		return d.refuseRecord("", fmt.Sprintf("has %d fields, the header has %d", len(fields), len(d.columns)), nil), nil
	}
	var p tasks.Payload
	for i, col := range d.columns {
		switch col {
		case colCardID:
			p.CardID = fields[i]
		case colOpenID:
			p.OpenID = fields[i]
		case colCode:
			p.Code = fields[i]
		case colOutRequestNo:
			p.OutRequestNo = fields[i]
		}
	}
	if p.CardID == "" {
		p.CardID = d.cfg.defaultCardID
	}
	if err := p.Validate(); err != nil {
		return rowError(f.start, "", "", err), nil
	}
	return Row{Line: f.start, Payload: p}, nil
}

// refuseRecord reports a record that is not a well-formed row. When it ran
// on over several lines, a quote most likely opened by mistake made it
// swallow the lines after its first; they are pushed back to be decoded
// again on their own.
func (d *csvDecoder) refuseRecord(field, problem string, cause error) Row {
	f := d.feed
	if f.last > f.start {
		problem += fmt.Sprintf(" (the record runs on to line %d)", f.last)
		f.lines.pushBack(f.rec[f.startEnd:], f.start+1)
	}
	return rowError(f.start, field, problem, cause)
}

// fieldName names the i-th field of a record for a message.
func (d *csvDecoder) fieldName(i int) string {
	if i < len(d.columns) {
		return columnNames[d.columns[i]]
	}
	return fmt.Sprintf("field %d", i+1)
}

// csvFeeder is the io.Reader a csv.Reader reads from. It hands over one line
// per Read, so the csv.Reader (whose bufio.Reader only asks for more when it
// has no complete line) never holds a line beyond the record it is parsing,
// and it keeps the record's lines so that they can be pushed back.
type csvFeeder struct {
	lines     *lineReader
	maxRecord int

	// rec holds the lines of the record since its first non-blank line.
	rec []byte
	// unsent is what remains of the line being handed over.
	unsent []byte
	// start is the number of the record's first line, 0 until one is seen;
	// startEnd is the offset in rec just past it.
	start, startEnd int
	// last is the number of the last line handed over.
	last int
	// full is set once rec outgrows maxRecord: the feeder then reports the
	// end of input, which makes csv end the record with a quote error.
	full bool
	// tooLong is the number of a too-long line met where a record would
	// start; csv is told the input ended, and the line becomes a bad row.
	tooLong int
	// err is the error reading the file failed with.
	err error
}

// reset prepares the feeder for the next record.
func (f *csvFeeder) reset() {
	f.rec = f.rec[:0]
	f.unsent = nil
	f.start, f.startEnd, f.last = 0, 0, 0
	f.full = false
	f.tooLong = 0
}

func (f *csvFeeder) Read(p []byte) (int, error) {
	// A line may be empty (a lone byte order mark), and bufio.Reader
	// tolerates only so many empty reads.
	for len(f.unsent) == 0 {
		if err := f.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, f.unsent)
	f.unsent = f.unsent[n:]
	return n, nil
}

func (f *csvFeeder) fill() error {
	if f.full {
		return io.EOF
	}
	line, num, tooLong, err := f.lines.read()
	if err != nil {
		if err != io.EOF {
			f.err = err
		}
		return err
	}
	if tooLong {
		if f.start == 0 {
			f.tooLong = num
			return io.EOF
		}
		// The line is reported on its own once the record it would have
		// continued has been refused.
		f.lines.unreadTooLong()
		f.full = true
		return io.EOF
	}
	if f.start == 0 {
		if len(content(line)) == 0 {
			// csv skips blank lines between records; they need not be
			// kept, and a file of blank lines must not grow rec.
			f.unsent = line
			return nil
		}
		f.start = num
	}
	f.rec = append(f.rec, line...)
	if num == f.start {
		f.startEnd = len(f.rec)
	}
	f.last = num
	if len(f.rec) > f.maxRecord {
		f.full = true
	}
	f.unsent = f.rec[len(f.rec)-len(line):]
	return nil
}

package memberfile

import (
	"bufio"
	"bytes"
	"io"
)

// MaxLineBytes bounds one line of a member file, and one CSV record,
// counted without the line ending. A member's row is a few hundred bytes, so
// anything longer is a broken file, reported as an invalid row; the bound
// keeps the decoder's memory flat whatever it is fed.
const MaxLineBytes = 1 << 20

// lineReader hands out the physical lines of a file with their 1-based
// numbers. Lines a CSV record swallowed by mistake can be pushed back and are
// then handed out again, so that the decoder can resynchronise after a stray
// quote.
type lineReader struct {
	br  *bufio.Reader
	max int
	// pending holds pushed-back lines, handed out before anything else.
	pending []byte
	// held says that the line after pending is one that was too long. Its
	// content is gone; only the fact that it was too long is kept.
	held bool
	// next is the number of the line read returns next.
	next int
	// long assembles a line longer than br's buffer.
	long []byte
	// lastTooLong says whether the line read returned last was too long,
	// for unreadTooLong.
	lastTooLong bool
	// started is set once the first line has been read from br.
	started bool
	// err is the sticky error of br: io.EOF or an I/O error.
	err error
}

func newLineReader(r io.Reader, maxLine int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10), max: maxLine, next: 1}
}

// read returns the next line with its line ending, and its number. A line
// longer than the limit comes back with tooLong set and no content. The
// returned slice is valid until the next call. The error is io.EOF at the
// end, or the underlying reader's error.
func (l *lineReader) read() (line []byte, num int, tooLong bool, err error) {
	switch {
	case len(l.pending) > 0:
		if i := bytes.IndexByte(l.pending, '\n'); i >= 0 {
			line, l.pending = l.pending[:i+1], l.pending[i+1:]
		} else {
			line, l.pending = l.pending, nil
		}
	case l.held:
		l.held = false
		tooLong = true
	default:
		if line, tooLong, err = l.readStream(); err != nil {
			return nil, l.next, false, err
		}
	}
	num = l.next
	l.next++
	l.lastTooLong = tooLong
	return line, num, tooLong, nil
}

func (l *lineReader) readStream() (line []byte, tooLong bool, err error) {
	if l.err != nil {
		return nil, false, l.err
	}
	line, err = l.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		// Keep up to the limit (plus room for "\r\n") and discard the rest:
		// the line is reported as too long whatever it holds.
		l.long = append(l.long[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = l.br.ReadSlice('\n')
			if len(l.long) <= l.max+2 {
				l.long = append(l.long, line...)
			}
		}
		line = l.long
	}
	if err != nil {
		l.err = err
		// A line cut short by an I/O error is not handed out: the read as
		// a whole has failed. The last line of a file without a final
		// newline is.
		if err != io.EOF || len(line) == 0 {
			return nil, false, err
		}
	}
	if !l.started {
		l.started = true
		// Spreadsheet programs start "CSV UTF-8" exports with a byte order
		// mark; left in, it would make the first column name unknown.
		line = bytes.TrimPrefix(line, []byte("\ufeff"))
	}
	if len(content(line)) > l.max {
		return nil, true, nil
	}
	return line, false, nil
}

// unreadTooLong puts back the line read returned last, which must have been
// too long, so that it is reported on its own rather than inside the record
// it would have ended.
func (l *lineReader) unreadTooLong() {
	if !l.lastTooLong {
		panic("memberfile: unreadTooLong after a line that was not too long")
	}
	l.held = true
	l.lastTooLong = false
	l.next--
}

// pushBack makes lines, whose first line is number first, the next lines
// read hands out. They must be the lines read handed out just before, so
// that numbering stays true.
func (l *lineReader) pushBack(lines []byte, first int) {
	if len(lines) == 0 {
		return
	}
	p := make([]byte, 0, len(lines)+len(l.pending))
	l.pending = append(append(p, lines...), l.pending...)
	l.next = first
	l.lastTooLong = false
}

// content returns line without its line ending ("\n" or "\r\n").
func content(line []byte) []byte {
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r"))
}

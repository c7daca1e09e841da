package enqueuecmd

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
)

// isTerminal says whether w is a terminal, the only place a progress bar
// belongs: piped or redirected, stderr carries the invalid-row report that
// tools read, and a bar's carriage returns would only garble it.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// progress draws the progress of `enqueue file` on a terminal. A nil
// *progress draws nothing, so callers need not check.
//
// With the file's size known the bar follows the bytes read, which gives a
// percentage and an ETA, and its description counts rows and rows/s; on a
// pipe, whose size is unknown, a spinner counts rows and rows/s. All
// drawing happens under mu, from the reading goroutine, so the bar never
// cuts through a line of the report.
type progress struct {
	mu    sync.Mutex
	bar   *progressbar.ProgressBar
	sized bool
	done  bool
	rows  int64
	start time.Time
	shown time.Time
}

// newProgress returns the progress of reading a file of size bytes (-1 when
// unknown) onto w, or nil when w is not a terminal.
func newProgress(w io.Writer, size int64) *progress {
	if !isTerminal(w) {
		return nil
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionClearOnFinish(),
		// No ticker goroutine: drawing only on the reader's calls keeps it
		// under mu.
		progressbar.OptionSetSpinnerChangeInterval(0),
		progressbar.OptionSetWidth(30),
	}
	if size >= 0 {
		opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionSetDescription("0 rows"))
	} else {
		opts = append(opts, progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("rows"))
		size = -1
	}
	now := time.Now()
	return &progress{bar: progressbar.NewOptions64(size, opts...), sized: size >= 0, start: now, shown: now}
}

// reader counts the bytes read from r on the bar, when it follows bytes.
func (p *progress) reader(r io.Reader) io.Reader {
	if p == nil || !p.sized {
		return r
	}
	return &progressReader{r: r, p: p}
}

type progressReader struct {
	r io.Reader
	p *progress
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.p.mu.Lock()
	if !pr.p.done && n > 0 {
		_ = pr.p.bar.Add(n)
	}
	pr.p.mu.Unlock()
	return n, err
}

// row counts one row read.
func (p *progress) row() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	p.rows++
	if !p.sized {
		_ = p.bar.Add(1)
		return
	}
	if now := time.Now(); now.Sub(p.shown) >= 200*time.Millisecond {
		p.shown = now
		rate := float64(p.rows) / now.Sub(p.start).Seconds()
		p.bar.Describe(fmt.Sprintf("%d rows, %.0f rows/s", p.rows, rate))
	}
}

// printLine writes a line of the report on w, clearing the bar first; the
// bar comes back at the next row.
func (p *progress) printLine(w io.Writer, line string) {
	if p == nil {
		fmt.Fprintln(w, line)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.done {
		_ = p.bar.Clear()
	}
	fmt.Fprintln(w, line)
}

// finish erases the bar for good, before the summary.
func (p *progress) finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.done {
		p.done = true
		_ = p.bar.Finish()
		_ = p.bar.Clear()
	}
}

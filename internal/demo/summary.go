package demo

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cardimport/cardimport/tasks"
)

// counts is where the queue's imports stand.
type counts struct {
	Imported, AlreadyMember, Retrying, Archived, Waiting, Running int
}

// String is the summary line. Its NAME=N fields are stable: the demo's
// smoke test reads them.
func (c counts) String() string {
	return fmt.Sprintf("imported=%d already_member=%d retrying=%d archived=%d waiting=%d running=%d",
		c.Imported, c.AlreadyMember, c.Retrying, c.Archived, c.Waiting, c.Running)
}

// done is the number of imports that reached an end.
func (c counts) done() int { return c.Imported + c.AlreadyMember + c.Archived }

// count reads the queue through asynq's inspector, as the dashboard does.
// Completed tasks are told apart by the outcome the handler wrote.
func count(insp *asynq.Inspector, queue string) (counts, error) {
	info, err := insp.GetQueueInfo(queue)
	if errors.Is(err, asynq.ErrQueueNotFound) {
		return counts{}, nil
	}
	if err != nil {
		return counts{}, err
	}
	c := counts{
		Retrying: info.Retry,
		Archived: info.Archived,
		Waiting:  info.Pending + info.Scheduled,
		Running:  info.Active,
	}
	for page := 1; ; page++ {
		done, err := insp.ListCompletedTasks(queue, asynq.Page(page), asynq.PageSize(500))
		if err != nil {
			return counts{}, err
		}
		for _, t := range done {
			r, err := tasks.DecodeResult(t.Result)
			switch {
			case err != nil:
			case r.Outcome == tasks.OutcomeImported:
				c.Imported++
			case r.Outcome == tasks.OutcomeAlreadyMember:
				c.AlreadyMember++
			}
		}
		if len(done) < 500 {
			return c, nil
		}
	}
}

// liveLine prints the summary: redrawn in place on a terminal, a line per
// change otherwise (a log file or a test reading the pipe).
type liveLine struct {
	w    io.Writer
	tty  bool
	last string
}

func newLiveLine(w io.Writer) *liveLine {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &liveLine{w: w, tty: tty}
}

func (l *liveLine) show(elapsed time.Duration, c counts) {
	line := c.String()
	if l.tty {
		fmt.Fprintf(l.w, "\r\033[K%5.1fs  %s", elapsed.Seconds(), line)
		return
	}
	if line != l.last {
		fmt.Fprintln(l.w, "demo:", line)
	}
	l.last = line
}

// println ends a redrawn line before a line of its own.
func (l *liveLine) println(format string, args ...any) {
	if l.tty {
		fmt.Fprint(l.w, "\r\033[K")
	}
	fmt.Fprintf(l.w, format+"\n", args...)
}

package enqueuecmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cardimport/cardimport/internal/memberfile"
	"github.com/cardimport/cardimport/results"
	"github.com/cardimport/cardimport/tasks"
)

// errInterrupted stops an import when the command's context is cancelled.
var errInterrupted = errors.New("interrupted")

// fileImport is one run of `enqueue file`.
//
// One goroutine reads the file, reports invalid rows in line order and
// hands valid ones to the command's goroutine, which starts their enqueues
// in a bounded pool. A row whose out_request_no is still being enqueued
// for an earlier row waits for it, so that rows repeating a number are
// enqueued in file order: the first is imported and the later ones are
// its duplicates, whatever the timing.
type fileImport struct {
	cn       *conn
	producer *tasks.Producer
	opts     []tasks.Option
	// run is the run the rows go into ("" for a dry run); runs its store,
	// once the run started, and counted what its counts already hold.
	run          string
	runs         *results.Store
	counted      [3]int64
	stopCounting func() error
	workers      int
	// dryRun replaces enqueueing with a check of the queue: see dryRun.
	dryRun bool
	check  *dryRun
	// progress is nil unless stderr is a terminal.
	progress *progress

	enqueued   atomic.Int64
	duplicates atomic.Int64

	// inFlight holds, for each out_request_no being enqueued, a channel
	// closed when the latest of its rows is done.
	flightMu sync.Mutex
	inFlight map[string]chan struct{}

	// mu guards what follows, and serialises writes to stderr.
	mu      sync.Mutex
	stderr  io.Writer
	invalid int64
	// closed is set when the import has returned. The reader may still be
	// blocked reading standard input; what it finds after that is
	// neither counted nor printed.
	closed bool
}

func newFileImport(fa *fileArgs, c *cli) *fileImport {
	im := &fileImport{opts: fa.opts, workers: fa.concurrency, dryRun: fa.dryRun, stderr: c.stderr, inFlight: map[string]chan struct{}{}}
	if !fa.dryRun {
		im.run = fa.run
	}
	return im
}

// job is a valid row on its way to the pool.
type job struct {
	line    int
	payload tasks.Payload
}

// importFile imports the file of fa.
func (im *fileImport) importFile(ctx context.Context, c *cli, fa *fileArgs) error {
	cn, err := fa.connect(c)
	if err != nil {
		return err
	}
	im.cn = cn
	src, name, size, err := c.open(fa.path)
	if err != nil {
		return err
	}
	defer src.Close()
	im.progress = newProgress(c.stderr, size)
	r, err := memberfile.NewReader(im.progress.reader(src), fa.format, memberfile.WithDefaultCardID(fa.cardID))
	if err != nil {
		var fe *tasks.FieldError
		if errors.As(err, &fe) {
			return fmt.Errorf("--card-id: %s", fe.Problem)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	// Options were checked with the flags.
	if im.producer, err = cn.producer(tasks.WithTaskOptions(im.opts...)); err != nil {
		return err
	}
	// Find out now, not at the first row, that Redis cannot be reached.
	if err := cn.ping(ctx); err != nil {
		return err
	}
	if im.dryRun {
		im.check = newDryRun(cn.inspector(), cn.queue)
	} else if err := im.startRun(ctx); err != nil {
		return err
	}
	err = im.runImport(ctx, r)
	if err != nil && !errors.Is(err, errInterrupted) {
		err = fmt.Errorf("%s: %w", name, err)
	}
	im.progress.finish()
	// A run that cannot be closed does not undo the import: alone, it is
	// a warning; after a failure, a line below it.
	switch cerr := im.closeRun(ctx); {
	case cerr != nil && err == nil:
		c.warnf("%v", cerr)
	case cerr != nil:
		err = errors.Join(err, cerr)
	}
	if _, _, invalid := im.counts(); err == nil && invalid > 0 {
		return withCode(exitInvalid, nil)
	}
	return err
}

// startRun starts the import's run and the counting of its rows.
func (im *fileImport) startRun(ctx context.Context) error {
	rs, err := im.cn.results()
	if err == nil {
		err = rs.StartRun(ctx, im.run)
	}
	if err != nil {
		return err
	}
	im.runs = rs
	im.stopCounting = im.countRun(ctx)
	return nil
}

// closeRun closes the run once every row is counted: it settles when none
// of them is left waiting. A no-op without a run.
func (im *fileImport) closeRun(ctx context.Context) error {
	if im.stopCounting == nil {
		return nil
	}
	err := im.stopCounting()
	if err == nil {
		err = im.runs.CloseRun(context.WithoutCancel(ctx), im.run)
	}
	if err != nil {
		return fmt.Errorf("run %s: %w", im.run, err)
	}
	return nil
}

// countInterval is how often the run's counts take what the import did
// since: one round trip a second instead of one a row, and a watcher of the
// run sees it fill.
const countInterval = time.Second

// countRun adds to the run's counts every countInterval until the returned
// function is called, which adds the rest.
func (im *fileImport) countRun(ctx context.Context) func() error {
	ctx = context.WithoutCancel(ctx)
	flush := func() error {
		e, d, i := im.counts()
		now := [3]int64{e, d, i}
		err := im.runs.CountEnqueued(ctx, im.run, now[0]-im.counted[0], now[1]-im.counted[1], now[2]-im.counted[2])
		if err == nil {
			im.counted = now
		}
		return err
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(countInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = flush() // the final flush retries what failed
			}
		}
	}()
	return func() error {
		close(done)
		<-stopped
		return flush()
	}
}

// rowBuffer is how many rows the reader may read ahead of the pool.
const rowBuffer = 1024

// runImport enqueues the rows of r and returns the first failure, or
// errInterrupted when ctx is cancelled first.
func (im *fileImport) runImport(ctx context.Context, r *memberfile.Reader) error {
	// stopped ends, its cause the failure, at the first failure or on
	// interruption: from then on no row is taken.
	stopped, stop := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stop(nil)
	defer context.AfterFunc(ctx, func() { stop(errInterrupted) })()
	var pool errgroup.Group
	pool.SetLimit(im.workers)
	// Rows wait in a buffer for the pool, so that the reader keeps ahead
	// of it: a few hundred kilobytes whatever the file.
	rows := make(chan job, rowBuffer)
	readErr := make(chan error, 1)
	// The reader is not waited for once the import stops: it may be
	// blocked on a terminal or a pipe that never ends.
	go func() {
		defer close(rows)
		readErr <- im.read(stopped, r, rows)
	}()
	for reading := true; reading; {
		select {
		case j, ok := <-rows:
			if ok {
				im.start(ctx, stopped, stop, &pool, j)
				continue
			}
			if err := <-readErr; err != nil {
				stop(err)
			}
			reading = false
		case <-stopped.Done():
			reading = false
		}
	}
	_ = pool.Wait() // failures stop the import with their cause

	im.mu.Lock()
	defer im.mu.Unlock()
	im.closed = true
	return context.Cause(stopped)
}

// read hands the file's valid rows over and reports the invalid ones,
// until the end of the file, a read error, or stopped ends.
func (im *fileImport) read(stopped context.Context, r *memberfile.Reader, rows chan<- job) error {
	for stopped.Err() == nil {
		row, err := r.Next()
		switch {
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		case stopped.Err() != nil:
			return nil
		}
		im.progress.row()
		if row.Err != nil {
			im.refuse(row)
			continue
		}
		select {
		case rows <- job{line: row.Line, payload: row.Payload}:
		case <-stopped.Done():
			return nil
		}
	}
	return nil
}

// start enqueues j in the pool once the row before it with the same
// out_request_no, if one is still in flight, is done. A failure stops the
// import; after it, or after an interruption, rows not begun are left.
func (im *fileImport) start(ctx, stopped context.Context, stop context.CancelCauseFunc, pool *errgroup.Group, j job) {
	no := j.payload.OutRequestNo
	done := make(chan struct{})
	im.flightMu.Lock()
	prev := im.inFlight[no]
	im.inFlight[no] = done
	im.flightMu.Unlock()
	pool.Go(func() error {
		defer im.landed(no, done)
		if prev != nil {
			<-prev
		}
		if stopped.Err() != nil {
			return nil
		}
		// An enqueue once begun runs to its end even if ctx is cancelled,
		// so that the summary counts exactly what reached Redis; each is
		// one round trip, bounded by the Redis client's timeouts.
		if err := im.enqueue(context.WithoutCancel(ctx), j); err != nil {
			stop(fmt.Errorf("line %d: %w", j.line, err))
		}
		return nil
	})
}

// landed marks the row of no started with done as finished.
func (im *fileImport) landed(no string, done chan struct{}) {
	im.flightMu.Lock()
	if im.inFlight[no] == done {
		delete(im.inFlight, no)
	}
	im.flightMu.Unlock()
	close(done)
}

// enqueue enqueues one row, or in a dry run checks it, and counts it.
func (im *fileImport) enqueue(ctx context.Context, j job) error {
	if j.payload.Run == "" {
		j.payload.Run = im.run
	}
	var duplicate bool
	var err error
	if im.dryRun {
		duplicate, err = im.check.duplicate(j.payload.OutRequestNo)
	} else {
		duplicate, err = im.producer.Enqueue(ctx, j.payload)
	}
	switch {
	case err != nil:
		return err
	case duplicate:
		im.duplicates.Add(1)
	default:
		im.enqueued.Add(1)
	}
	return nil
}

// refuse counts an invalid row and names it on stderr. The message names
// the line, the field and the problem, never the value.
func (im *fileImport) refuse(row memberfile.Row) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.closed {
		return
	}
	im.invalid++
	im.progress.printLine(im.stderr, row.Err.Error())
}

func (im *fileImport) counts() (enqueued, duplicates, invalid int64) {
	im.mu.Lock()
	defer im.mu.Unlock()
	return im.enqueued.Load(), im.duplicates.Load(), im.invalid
}

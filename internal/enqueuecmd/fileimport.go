package enqueuecmd

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
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
// hands valid ones to a fixed set of workers (runImport).
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
	im := &fileImport{opts: fa.opts, workers: fa.concurrency, dryRun: fa.dryRun, stderr: c.stderr}
	if !fa.dryRun {
		im.run = fa.run
	}
	return im
}

// job is a valid row on its way to a worker.
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

// shardBuffer is how many rows may wait for each worker. A row goes to the
// worker of its out_request_no, so without slack the reader would stall on
// one busy worker while the others idle; 128 rows of ~200 bytes per worker
// keep all of them fed, at a few hundred kilobytes whatever the file.
const shardBuffer = 128

// runImport enqueues the rows of r and returns the first failure, or
// errInterrupted when ctx is cancelled first.
//
// Each row goes to the worker of its out_request_no (shardOf), one of
// im.workers in an errgroup: rows repeating a number are enqueued one
// after the other in file order, so the first is imported and the later
// ones are its duplicates, whatever the timing, with no bookkeeping per
// row.
func (im *fileImport) runImport(ctx context.Context, r *memberfile.Reader) error {
	// stopped ends, its cause the failure, on a read error or an
	// interruption; running ends with it or at a worker's failure. From
	// then on no row is taken.
	stopped, stop := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stop(nil)
	defer context.AfterFunc(ctx, func() { stop(errInterrupted) })()
	workers, running := errgroup.WithContext(stopped)

	shards := make([]chan job, im.workers)
	for i := range shards {
		shards[i] = make(chan job, shardBuffer)
		workers.Go(func() error { return im.work(ctx, running, shards[i]) })
	}
	// The reader is not waited for once the import stops: it may be
	// blocked on a terminal or a pipe that never ends. It closes the
	// shards when it is done, which ends the workers once they drain them.
	go func() {
		defer func() {
			for _, ch := range shards {
				close(ch)
			}
		}()
		if err := im.read(running, r, shards); err != nil {
			stop(err)
		}
	}()
	if err := workers.Wait(); err != nil {
		stop(err)
	}

	im.mu.Lock()
	defer im.mu.Unlock()
	im.closed = true
	return context.Cause(stopped)
}

// read hands the file's valid rows to the workers and reports the invalid
// ones, until the end of the file, a read error, or running ends.
func (im *fileImport) read(running context.Context, r *memberfile.Reader, shards []chan job) error {
	for running.Err() == nil {
		row, err := r.Next()
		switch {
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		case running.Err() != nil:
			return nil
		}
		im.progress.row()
		if row.Err != nil {
			im.refuse(row)
			continue
		}
		select {
		case shards[shardOf(row.Payload.OutRequestNo, len(shards))] <- job{line: row.Line, payload: row.Payload}:
		case <-running.Done():
			return nil
		}
	}
	return nil
}

// work enqueues the rows of one shard until it is closed and drained, or
// running ends; rows not begun by then are left. It returns the first
// failure, naming its line.
func (im *fileImport) work(ctx, running context.Context, jobs <-chan job) error {
	// An enqueue once begun runs to its end even if ctx is cancelled, so
	// that the summary counts exactly what reached Redis; each is one
	// round trip, bounded by the Redis client's timeouts.
	ctx = context.WithoutCancel(ctx)
	for {
		select {
		case j, ok := <-jobs:
			if !ok || running.Err() != nil {
				return nil
			}
			if err := im.enqueue(ctx, j); err != nil {
				return fmt.Errorf("line %d: %w", j.line, err)
			}
		case <-running.Done():
			return nil
		}
	}
}

// shardSeed seeds shardOf's hash for the process.
var shardSeed = maphash.MakeSeed()

// shardOf picks the worker for an out_request_no, without allocating: it
// runs once a row.
func shardOf(outRequestNo string, n int) int {
	return int(maphash.String(shardSeed, outRequestNo) % uint64(n))
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

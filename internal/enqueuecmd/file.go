package enqueuecmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cardimport/cardimport/internal/memberfile"
	"github.com/cardimport/cardimport/results"
	"github.com/cardimport/cardimport/tasks"
)

const fileAbout = `Enqueues the import of every member in PATH (- for standard input): CSV
with a header row naming the columns card_id, openid, code (optional) and
out_request_no in any order, or JSON lines with those keys (by extension:
.jsonl, .ndjson and .json are JSON lines; --format overrides).

Each invalid row (a problem with a field, a wrong number of columns,
broken quoting, bad UTF-8, a line that is not JSON) is named on standard
error as "line L: FIELD: problem", and the valid rows are still enqueued. A
row whose out_request_no is already in the queue, or repeats one earlier in
the file, counts as a duplicate, so running the same file again after an
interruption imports nobody twice. The members belong to a run (--run, a
new one by default), printed as "run=ID" just before the summary; the last
line on standard output is
  enqueued=N duplicates=M invalid=K
With --wait the command then follows the run until it settles (a progress
bar on a terminal, plain lines on standard error when piped) and prints
  imported=N already_member=M dead=K
as the last line; it exits 3 when some member is dead.
With --dry-run nothing is enqueued: the rows are validated and checked
against the queue, and enqueued=N counts the rows that would be enqueued.
On a terminal a progress bar is drawn on standard error; piped, none.`

// defaultConcurrency is how many enqueues are in flight at once.
const defaultConcurrency = tasks.DefaultProducerConcurrency

// fileArgs are the flags and argument of `enqueue file`.
type fileArgs struct {
	*cmdFlags
	path        string
	format      memberfile.Format
	cardID      string
	concurrency int
	run         string
	dryRun      bool
	wait        bool
	opts        []tasks.Option
}

func runFile(ctx context.Context, c *cli, args []string) error {
	fa, err := parseFileArgs(c, args)
	if errors.Is(err, errHelp) {
		return err
	}
	// Every run that got past -h ends with the summary line, even a usage
	// error that enqueued nothing: tools read it.
	im := &fileImport{}
	if err == nil {
		im = newFileImport(fa, c)
		err = im.importFile(ctx, c, fa)
		if im.cn != nil {
			defer im.cn.close()
		}
	}
	im.progress.finish()
	enqueued, duplicates, invalid := im.counts()
	if im.dryRun {
		fmt.Fprintln(c.stdout, "dry run: nothing was enqueued; enqueued= counts the rows that would be")
	}
	if im.runs != nil {
		fmt.Fprintf(c.stdout, "run=%s\n", im.run)
	}
	fmt.Fprintf(c.stdout, "enqueued=%d duplicates=%d invalid=%d\n", enqueued, duplicates, invalid)
	if !fa.wait || im.runs == nil || exitCode(err) == exitFailure {
		return err
	}
	if waited := waitRun(ctx, c, im.runs, im.run); waited != nil {
		return waited
	}
	return err
}

func parseFileArgs(c *cli, args []string) (*fileArgs, error) {
	fa := &fileArgs{cmdFlags: newFlags(c, "file", "[flags] PATH", fileAbout)}
	var tf taskFlags
	tf.register(fa.FlagSet)
	formatName := fa.String("format", "", "`format` of the file, csv or jsonl (default by the extension; csv for -)")
	fa.StringVar(&fa.cardID, "card-id", "", "`card` of rows without one: every row when the file has no card_id column, else rows whose card_id is empty")
	fa.IntVar(&fa.concurrency, "concurrency", defaultConcurrency, "`number` of enqueues in flight at once")
	fa.BoolVar(&fa.dryRun, "dry-run", false, "validate the file and check it against the queue without enqueueing anything")
	fa.StringVar(&fa.run, "run", "", "`ID` of the run the members belong to (default a new one, printed as run=ID)")
	fa.BoolVar(&fa.wait, "wait", false, "after enqueueing, follow the run until it settles and print imported=N already_member=M dead=K")
	if err := fa.parse(args); err != nil {
		return fa, err
	}
	if fa.NArg() != 1 {
		return fa, fmt.Errorf("file: want one PATH (- for standard input), got %d arguments; flags go before it", fa.NArg())
	}
	fa.path = fa.Arg(0)
	fa.format = memberfile.FormatFromPath(fa.path)
	if *formatName != "" {
		var err error
		if fa.format, err = memberfile.ParseFormat(*formatName); err != nil {
			return fa, fmt.Errorf("--format: %w", err)
		}
	}
	if fa.concurrency < 1 {
		return fa, fmt.Errorf("--concurrency: must be at least 1, got %d", fa.concurrency)
	}
	var err error
	if fa.opts, err = tf.options(fa.redis.queue); err != nil {
		return fa, err
	}
	if fa.run == "" {
		fa.run = results.NewRunID(time.Now())
	} else if err := results.ValidateRunID(fa.run); err != nil {
		return fa, fmt.Errorf("--%w", err)
	}
	if fa.wait && fa.dryRun {
		return fa, errors.New("--wait: cannot wait for a dry run")
	}
	return fa, nil
}

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

// open opens the member file; "-" is standard input, which is not closed.
// size is the number of bytes to read, or -1 when it cannot be known (a
// pipe, a terminal).
func (c *cli) open(path string) (src io.ReadCloser, name string, size int64, err error) {
	if path == "-" {
		return io.NopCloser(c.stdin), "standard input", sizeOf(c.stdin), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, "", 0, err
	}
	return f, path, sizeOf(f), nil
}

// sizeOf returns the size of a regular file, -1 for anything else.
func sizeOf(r io.Reader) int64 {
	f, ok := r.(*os.File)
	if !ok {
		return -1
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return -1
	}
	return fi.Size()
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
	rows := make(chan job)
	readDone := make(chan error, 1)
	// The reader is not waited for once the import stops: it may be
	// blocked on a terminal or a pipe that never ends.
	go func() { readDone <- im.read(stopped, r, rows) }()
	for reading := true; reading; {
		select {
		case j := <-rows:
			im.start(ctx, stopped, stop, &pool, j)
		case err := <-readDone:
			if err != nil {
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

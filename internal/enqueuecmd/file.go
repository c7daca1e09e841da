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

	"github.com/hibiken/asynq"

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

func runFile(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "file", "[flags] PATH", fileAbout)
	var rf redisFlags
	rf.register(fs, c.getenv)
	var tf taskFlags
	tf.register(fs)
	formatName := fs.String("format", "", "`format` of the file, csv or jsonl (default by the extension; csv for -)")
	cardID := fs.String("card-id", "", "`card` of rows without one: every row when the file has no card_id column, else rows whose card_id is empty")
	concurrency := fs.Int("concurrency", defaultConcurrency, "`number` of enqueues in flight at once")
	dryRun := fs.Bool("dry-run", false, "validate the file and check it against the queue without enqueueing anything")
	run := fs.String("run", "", "`ID` of the run the members belong to (default a new one, printed as run=ID)")
	wait := fs.Bool("wait", false, "after enqueueing, follow the run until it settles and print imported=N already_member=M dead=K")
	// Every run that got past -h ends with the summary line, even a usage
	// error that enqueued nothing: tools read it.
	usageError := func(format string, args ...any) int {
		if format != "" {
			c.errorf(format, args...)
		}
		fmt.Fprintln(c.stdout, "enqueued=0 duplicates=0 invalid=0")
		return exitUsage
	}
	if code, done := parseFlags(fs, args); done {
		if code == exitOK {
			return code
		}
		return usageError("")
	}
	if fs.NArg() != 1 {
		return usageError("file: want one PATH (- for standard input), got %d arguments; flags go before it", fs.NArg())
	}
	path := fs.Arg(0)
	format := memberfile.FormatFromPath(path)
	if *formatName != "" {
		var err error
		if format, err = memberfile.ParseFormat(*formatName); err != nil {
			return usageError("--format: %v", err)
		}
	}
	if *concurrency < 1 {
		return usageError("--concurrency: must be at least 1, got %d", *concurrency)
	}
	opts, err := tf.options(rf.queue)
	if err != nil {
		return usageError("%v", err)
	}
	if *run == "" {
		*run = results.NewRunID(time.Now())
	} else if err := results.ValidateRunID(*run); err != nil {
		return usageError("--%v", err)
	}
	if *wait && *dryRun {
		return usageError("--wait: cannot wait for a dry run")
	}

	im := &fileImport{opts: opts, queue: rf.queue, workers: *concurrency, dryRun: *dryRun, stderr: c.stderr, stop: make(chan struct{})}
	if !*dryRun {
		im.run = *run
	}
	code := im.importFile(ctx, c, rf, path, format, *cardID)
	if im.runs != nil {
		defer im.runs.close()
	}
	im.progress.finish()
	enqueued, duplicates, invalid := im.counts()
	if *dryRun {
		fmt.Fprintln(c.stdout, "dry run: nothing was enqueued; enqueued= counts the rows that would be")
	}
	if im.runs != nil {
		fmt.Fprintf(c.stdout, "run=%s\n", im.run)
	}
	fmt.Fprintf(c.stdout, "enqueued=%d duplicates=%d invalid=%d\n", enqueued, duplicates, invalid)
	if !*wait || im.runs == nil || code == exitFailure {
		return code
	}
	if waited := waitRun(ctx, c, im.runs.Store, im.run); waited != exitOK {
		return waited
	}
	return code
}

// shardBuffer is how many rows may wait for each worker. A row goes to the
// worker of its out_request_no, so without slack the reader would stall on
// one busy worker while the others idle; 128 rows of ~200 bytes per worker
// keep all of them fed, at a few hundred kilobytes whatever the file.
const shardBuffer = 128

// errInterrupted stops an import when the command's context is cancelled.
var errInterrupted = errors.New("interrupted")

// fileImport is one run of `enqueue file`.
//
// One goroutine reads the file, reports invalid rows in line order and
// hands valid ones to a pool of workers that enqueue them. A row goes to
// the worker its out_request_no hashes to, so that rows repeating a number
// are enqueued in file order: the first is imported and the later ones are
// its duplicates, whatever the timing.
type fileImport struct {
	producer *tasks.Producer
	opts     []tasks.Option
	// run is the run the rows go into ("" for a dry run); runs its store,
	// once opened, and counted what its counts already hold.
	run     string
	runs    *resultsConn
	counted [3]int64
	queue   string
	workers int
	// dryRun replaces enqueueing with a check of the queue: see dryRun.
	dryRun bool
	check  *dryRun
	// progress is nil unless stderr is a terminal.
	progress *progress

	enqueued   atomic.Int64
	duplicates atomic.Int64

	// stop is closed on the first failure or on interruption; reader and
	// workers then take no new row.
	stop     chan struct{}
	stopOnce sync.Once

	// mu guards what follows, and serialises writes to stderr.
	mu      sync.Mutex
	stderr  io.Writer
	invalid int64
	err     error
	// closed is set when the import has returned. The reader may still be
	// blocked reading standard input; what it finds after that is
	// neither counted nor printed.
	closed bool
}

// job is a valid row on its way to a worker.
type job struct {
	line    int
	payload tasks.Payload
}

// importFile imports the file at path and returns the exit code.
func (im *fileImport) importFile(ctx context.Context, c *cli, rf redisFlags, path string, format memberfile.Format, cardID string) int {
	connOpt, err := rf.connOpt(c.getenv)
	if err != nil {
		c.errorf("%v", err)
		return exitFailure
	}
	src, name, size, err := c.open(path)
	if err != nil {
		c.errorf("%v", err)
		return exitFailure
	}
	defer src.Close()
	im.progress = newProgress(c.stderr, size)
	r, err := memberfile.NewReader(im.progress.reader(src), format, memberfile.WithDefaultCardID(cardID))
	if err != nil {
		var fe *tasks.FieldError
		if errors.As(err, &fe) {
			c.errorf("--card-id: %s", fe.Problem)
			return exitUsage
		}
		c.errorf("%s: %v", name, err)
		return exitFailure
	}
	client := asynq.NewClient(connOpt)
	defer client.Close()
	// Options were checked with the flags.
	if im.producer, err = tasks.NewProducer(client, tasks.WithTaskOptions(im.opts...)); err != nil {
		c.errorf("%v", err)
		return exitUsage
	}
	// Find out now, not at the first row, that Redis cannot be reached.
	if err := im.producer.Ping(); err != nil {
		c.errorf("redis: %v", err)
		return exitFailure
	}
	if im.dryRun {
		im.check = newDryRun(connOpt, im.queue, im.workers)
		defer im.check.close()
	} else {
		conn, err := openResults(ctx, c, rf)
		if err == nil {
			err = conn.StartRun(ctx, im.run)
		}
		if err != nil {
			c.errorf("%v", err)
			return exitFailure
		}
		im.runs = &conn
		stopCounting := im.countRun(ctx)
		defer func() {
			// The run is closed only once every row is counted: it
			// settles when none of them is left waiting.
			err := stopCounting()
			if err == nil {
				err = conn.CloseRun(context.WithoutCancel(ctx), im.run)
			}
			if err != nil {
				c.errorf("run %s: %v", im.run, err)
			}
		}()
	}
	if err := im.runImport(ctx, r); err != nil {
		if !errors.Is(err, errInterrupted) {
			err = fmt.Errorf("%s: %w", name, err)
		}
		im.progress.finish()
		c.errorf("%v", err)
		return exitFailure
	}
	if _, _, invalid := im.counts(); invalid > 0 {
		return exitInvalid
	}
	return exitOK
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
	shards := make([]chan job, im.workers)
	var wg sync.WaitGroup
	for i := range shards {
		shards[i] = make(chan job, shardBuffer)
		wg.Go(func() { im.work(ctx, i, shards[i]) })
	}
	readDone := make(chan error, 1)
	go func() { readDone <- im.read(r, shards) }()

	// The reader is not waited for once the import stops: it may be
	// blocked on a terminal or a pipe that never ends.
	select {
	case err := <-readDone:
		if err != nil {
			im.fail(err)
		}
	case <-im.stop:
	case <-ctx.Done():
		im.fail(errInterrupted)
	}
	workersDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(workersDone)
	}()
	select {
	case <-workersDone:
	case <-ctx.Done():
		im.fail(errInterrupted)
		<-workersDone
	}

	im.mu.Lock()
	defer im.mu.Unlock()
	im.closed = true
	return im.err
}

// read hands the file's valid rows to the workers and reports the invalid
// ones, until the end of the file, a read error, or stop.
func (im *fileImport) read(r *memberfile.Reader, shards []chan job) error {
	defer func() {
		for _, ch := range shards {
			close(ch)
		}
	}()
	for !im.stopped() {
		row, err := r.Next()
		switch {
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		case im.stopped():
			return nil
		}
		im.progress.row()
		if row.Err != nil {
			im.refuse(row)
			continue
		}
		select {
		case shards[shardOf(row.Payload.OutRequestNo, len(shards))] <- job{line: row.Line, payload: row.Payload}:
		case <-im.stop:
			return nil
		}
	}
	return nil
}

// work enqueues the jobs of one shard.
func (im *fileImport) work(ctx context.Context, shard int, jobs <-chan job) {
	// An enqueue once begun runs to its end even if ctx is cancelled, so
	// that the summary counts exactly what reached Redis; each is one
	// round trip, bounded by the Redis client's timeouts.
	ctx = context.WithoutCancel(ctx)
	for !im.stopped() {
		var j job
		var ok bool
		select {
		case j, ok = <-jobs:
			if !ok {
				return
			}
		case <-im.stop:
			return
		}
		if j.payload.Run == "" {
			j.payload.Run = im.run
		}
		var duplicate bool
		var err error
		if im.dryRun {
			duplicate, err = im.check.duplicate(shard, j.payload.OutRequestNo)
		} else {
			duplicate, err = im.producer.Enqueue(ctx, j.payload)
		}
		switch {
		case err != nil:
			im.fail(fmt.Errorf("line %d: %w", j.line, err))
			return
		case duplicate:
			im.duplicates.Add(1)
		default:
			im.enqueued.Add(1)
		}
	}
}

func (im *fileImport) stopped() bool {
	select {
	case <-im.stop:
		return true
	default:
		return false
	}
}

// fail records the first failure and stops the import.
func (im *fileImport) fail(err error) {
	im.mu.Lock()
	if im.err == nil {
		im.err = err
	}
	im.mu.Unlock()
	im.stopOnce.Do(func() { close(im.stop) })
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

// shardOf picks the worker for an out_request_no (FNV-1a).
func shardOf(outRequestNo string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(outRequestNo); i++ {
		h ^= uint32(outRequestNo[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

package enqueuecmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

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
	// The error goes out before the summary, which stays the last line.
	err = c.report(err)
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

package enqueuecmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/internal/termsafe"
	"github.com/cardimport/cardimport/tasks"
)

const deadAbout = `Dead letters are imports that failed for good: refused by WeChat, out of
retries, rejected as a payload, or archived by asynq itself. The worker
records each in a store of its own in Redis that is never trimmed, and
removes it when the import later succeeds, however it was put back.

subcommands:
  list    list dead letters (a table, or --json lines)
  replay  put dead letters back with a fresh retry budget

Both first reconcile the store with asynq's archive, as the worker does
every minute, so nothing asynq archived is missing.`

func runDead(ctx context.Context, c *cli, args []string) int {
	if len(args) == 0 {
		fmt.Fprintf(c.stderr, "usage: enqueue dead list|replay [flags]\n\n%s\n", deadAbout)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintf(c.stderr, "usage: enqueue dead list|replay [flags]\n\n%s\n", deadAbout)
		return exitOK
	case "list":
		return runDeadList(ctx, c, args[1:])
	case "replay":
		return runDeadReplay(ctx, c, args[1:])
	}
	c.errorf("dead: unknown subcommand %q (list or replay)", args[0])
	return exitUsage
}

// filterFlags select dead letters.
type filterFlags struct {
	reason string
	cardID string
	since  string
}

func (f *filterFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.reason, "reason", "", "only dead letters with this WeChat `code` (NO_AUTH) or reason (permanent, retries_exhausted, invalid_payload, archived_by_asynq), any case")
	fs.StringVar(&f.cardID, "card-id", "", "only dead letters of this `card`")
	fs.StringVar(&f.since, "since", "", "only dead letters whose last failure is within this `duration` (24h) or at or after this RFC3339 time")
}

func (f *filterFlags) set() bool { return f.reason != "" || f.cardID != "" || f.since != "" }

// filter returns the filter, or an error naming the flag at fault.
func (f *filterFlags) filter(now time.Time) (deadletter.Filter, error) {
	out := deadletter.Filter{Reason: f.reason, CardID: f.cardID}
	if f.since == "" {
		return out, nil
	}
	t, err := parseSince(f.since, now)
	out.Since = t
	return out, err
}

// openDead opens the dead-letter store of the flags' queue and reconciles
// it with asynq's archive.
func openDead(ctx context.Context, c *cli, rf redisFlags) (*deadletter.Store, error) {
	connOpt, err := rf.connOpt(c.getenv)
	if err != nil {
		return nil, err
	}
	store, err := deadletter.New(connOpt, rf.queue)
	if err != nil {
		return nil, err
	}
	// Say plainly that Redis cannot be reached, not what the sweep's
	// first command made of it.
	if err := store.Ping(ctx); err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("redis: %w", err)
	}
	if _, err := store.Sweep(ctx); err != nil {
		_ = store.Close()
		return nil, err
	}
	return store, nil
}

const deadListAbout = `Lists the dead letters of the queue, oldest last failure first: a table,
or with --json one JSON object a line with the fields out_request_no,
card_id, openid_masked, reason, http_status, wechat_code, message,
request_id, attempts (over every run), first_failed_at, last_failed_at,
state, replays and replayed_at. The openid is always masked.

state "replayed" means the import was put back and has not finished yet:
it leaves the list when it succeeds, and is "dead" again if it fails.

The last line, on standard output after the table or on standard error
with --json, is
  listed=N replayed=R`

func runDeadList(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "dead list", "[flags]", deadListAbout)
	var rf redisFlags
	rf.register(fs, c.getenv)
	var ff filterFlags
	ff.register(fs)
	asJSON := fs.Bool("json", false, "print one JSON object a line instead of a table")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		c.errorf("dead list: takes no arguments, got %d", fs.NArg())
		return exitUsage
	}
	filter, err := ff.filter(time.Now())
	if err != nil {
		c.errorf("%v", err)
		return exitUsage
	}
	store, err := openDead(ctx, c, rf)
	if err != nil {
		c.errorf("dead list: %v", err)
		return exitFailure
	}
	defer store.Close()

	var listed, replayed int
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	if !*asJSON {
		fmt.Fprintln(tw, "OUT_REQUEST_NO\tCARD_ID\tOPENID\tREASON\tHTTP\tCODE\tATTEMPTS\tLAST_FAILURE\tSTATE\tMESSAGE")
	}
	for r, err := range store.List(ctx, filter) {
		if err != nil {
			_ = tw.Flush()
			c.errorf("dead list: %v", err)
			return exitFailure
		}
		listed++
		if r.State == deadletter.StateReplayed {
			replayed++
		}
		if *asJSON {
			if err := writeJSON(c.stdout, r); err != nil {
				c.errorf("dead list: %v", err)
				return exitFailure
			}
			continue
		}
		// Every cell comes from Redis: cell escapes what a terminal would
		// obey, and the tabs and line breaks that would shift the table.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", cell(r.OutRequestNo), cell(r.CardID), cell(r.OpenIDMasked),
			cell(string(r.Reason)), cell(httpStatus(r.HTTPStatus)), cell(r.WeChatCode), r.Attempts,
			r.LastFailedAt.Format(time.RFC3339), cell(string(r.State)), cell(truncate(r.Message, 60)))
	}
	if err := tw.Flush(); err != nil {
		c.errorf("dead list: %v", err)
		return exitFailure
	}
	summary := c.stdout
	if *asJSON {
		// Standard output stays pure JSON lines.
		summary = c.stderr
	}
	fmt.Fprintf(summary, "listed=%d replayed=%d\n", listed, replayed)
	return exitOK
}

const deadReplayAbout = `Puts dead letters back into the queue, each as a new task with a fresh
retry budget under the same out_request_no (so WeChat recognises a repeat
and nobody is imported twice): the ones named, the ones the filters
select, or --all. Their records stay, as state "replayed", until the
import succeeds. A dead letter whose import is already queued or running
(an earlier replay) is skipped, as is one that has completed since (its
record is removed). A payload that is not a valid import cannot be
replayed: it is named on standard error and counted as failed.

The last line on standard output is
  replayed=N skipped=M failed=K
or, with --dry-run, which changes nothing,
  would replay=N skipped=M failed=K`

func runDeadReplay(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "dead replay", "[flags] (--all | --reason CODE | --card-id CARD | --since T | OUT_REQUEST_NO...)", deadReplayAbout)
	var rf redisFlags
	rf.register(fs, c.getenv)
	var ff filterFlags
	ff.register(fs)
	var tf taskFlags
	tf.register(fs)
	all := fs.Bool("all", false, "replay every dead letter")
	dryRun := fs.Bool("dry-run", false, "say what would be replayed, change nothing")
	concurrency := fs.Int("concurrency", defaultConcurrency, "`number` of replays in flight at once")
	rp := &deadReplay{c: c}
	// Every run that got past -h ends with the summary line, even one
	// that replayed nothing: tools read it.
	finish := func(code int, err error) int {
		if err != nil {
			c.errorf("%v", err)
		}
		format := "replayed=%d skipped=%d failed=%d\n"
		if *dryRun {
			format = "would replay=%d skipped=%d failed=%d\n"
		}
		fmt.Fprintf(c.stdout, format, rp.replayed, rp.skipped, rp.failed)
		if code == exitOK && rp.failed > 0 {
			code = exitFailure
		}
		return code
	}
	if code, done := parseFlags(fs, args); done {
		if code == exitOK {
			return code
		}
		return finish(code, nil)
	}
	rp.dryRun = *dryRun
	names := fs.Args()
	switch {
	case len(names) > 0 && (*all || ff.set()):
		return finish(exitUsage, errors.New("dead replay: name out_request_nos or select with --all or filters, not both"))
	case len(names) == 0 && !*all && !ff.set():
		return finish(exitUsage, errors.New("dead replay: say what to replay: out_request_nos, a filter (--reason, --card-id, --since) or --all"))
	case *concurrency < 1:
		return finish(exitUsage, fmt.Errorf("--concurrency: must be at least 1, got %d", *concurrency))
	}
	filter, err := ff.filter(time.Now())
	if err != nil {
		return finish(exitUsage, err)
	}
	if rp.opts, err = tf.options(rf.queue); err != nil {
		return finish(exitUsage, err)
	}
	store, err := openDead(ctx, c, rf)
	if err != nil {
		return finish(exitFailure, fmt.Errorf("dead replay: %w", err))
	}
	defer store.Close()
	rp.store = store

	err = rp.run(ctx, *concurrency, func(yield func(deadletter.Record, error) bool) {
		if len(names) == 0 {
			for r, err := range store.List(ctx, filter) {
				if !yield(r, err) {
					return
				}
			}
			return
		}
		for _, no := range names {
			r, err := store.Get(ctx, no)
			if errors.Is(err, deadletter.ErrNotFound) {
				rp.failure(no, errors.New("no dead letter"))
				continue
			}
			if !yield(r, err) {
				return
			}
		}
	})
	if err != nil {
		return finish(exitFailure, fmt.Errorf("dead replay: %w", err))
	}
	return finish(exitOK, nil)
}

// deadReplay is one run of `enqueue dead replay`: one goroutine reads the
// records, a pool replays them (each replay is a few Redis round trips,
// which a handful in flight hide).
type deadReplay struct {
	store  *deadletter.Store
	dryRun bool
	opts   []tasks.Option
	c      *cli

	// mu guards the counts and serialises writes to stderr.
	mu                        sync.Mutex
	replayed, skipped, failed int
}

// run replays the records recs yields with n replays in flight, and
// returns the first error that is not a record's own (Redis gone, Ctrl-C).
func (rp *deadReplay) run(ctx context.Context, n int, recs iter.Seq2[deadletter.Record, error]) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan deadletter.Record, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for r := range jobs {
				if err := rp.replay(ctx, r); err != nil {
					cancel(err)
				}
			}
		})
	}
	// A replay that fails again at once is recorded anew, which moves it
	// to the end of the list being read; once a run is enough.
	seen := map[string]bool{}
	var readErr error
	for r, err := range recs {
		if err != nil {
			readErr = err
			break
		}
		if seen[r.OutRequestNo] {
			continue
		}
		seen[r.OutRequestNo] = true
		select {
		case jobs <- r:
			continue
		case <-ctx.Done():
		}
		break
	}
	close(jobs)
	wg.Wait()
	if readErr != nil {
		return readErr
	}
	return context.Cause(ctx)
}

func (rp *deadReplay) replay(ctx context.Context, r deadletter.Record) error {
	out, err := rp.store.Replay(ctx, r, rp.dryRun, rp.opts...)
	switch {
	case errors.Is(err, deadletter.ErrNotReplayable):
		rp.failure(r.OutRequestNo, err)
	case err != nil:
		return fmt.Errorf("out_request_no=%s: %w", r.OutRequestNo, err)
	default:
		rp.mu.Lock()
		defer rp.mu.Unlock()
		if out == deadletter.Replayed {
			rp.replayed++
		} else {
			rp.skipped++
		}
	}
	return nil
}

// failure counts a dead letter that cannot be replayed and names it.
func (rp *deadReplay) failure(no string, err error) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	rp.failed++
	rp.c.errorf("dead replay: out_request_no=%s: %v", no, err)
}

// cell is a table cell: "-" for nothing, and never a control character.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return termsafe.String(s)
}

func httpStatus(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// truncate shortens s to at most n characters, on one line, for a table.
func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

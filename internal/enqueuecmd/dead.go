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

	"golang.org/x/sync/errgroup"

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

func runDead(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 {
		fmt.Fprintf(c.stderr, "usage: enqueue dead list|replay [flags]\n\n%s\n", deadAbout)
		return errUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintf(c.stderr, "usage: enqueue dead list|replay [flags]\n\n%s\n", deadAbout)
		return errHelp
	case "list":
		return runDeadList(ctx, c, args[1:])
	case "replay":
		return runDeadReplay(ctx, c, args[1:])
	}
	return fmt.Errorf("dead: unknown subcommand %q (list or replay)", args[0])
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
// it with asynq's archive. Its errors are named for cmd.
func openDead(ctx context.Context, c *cli, fs *cmdFlags, cmd string) (*conn, *deadletter.Store, error) {
	cn, err := fs.open(ctx, c)
	var store *deadletter.Store
	if err == nil {
		if store, err = cn.dead(); err == nil {
			_, err = store.Sweep(ctx)
		}
		if err != nil {
			cn.close()
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return cn, store, nil
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

func runDeadList(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "dead list", "[flags]", deadListAbout)
	var ff filterFlags
	ff.register(fs.FlagSet)
	asJSON := fs.Bool("json", false, "print one JSON object a line instead of a table")
	if err := fs.parseNoArgs(args, "dead list"); err != nil {
		return err
	}
	filter, err := ff.filter(time.Now())
	if err != nil {
		return err
	}
	cn, store, err := openDead(ctx, c, fs, "dead list")
	if err != nil {
		return err
	}
	defer cn.close()
	listed, replayed, err := listDead(c, store.List(ctx, filter), *asJSON)
	if err != nil {
		return fmt.Errorf("dead list: %w", err)
	}
	summary := c.stdout
	if *asJSON {
		// Standard output stays pure JSON lines.
		summary = c.stderr
	}
	fmt.Fprintf(summary, "listed=%d replayed=%d\n", listed, replayed)
	return nil
}

// listDead prints the records recs yields, as a table or JSON lines, and
// counts them.
func listDead(c *cli, recs iter.Seq2[deadletter.Record, error], asJSON bool) (listed, replayed int, err error) {
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	if !asJSON {
		fmt.Fprintln(tw, "OUT_REQUEST_NO\tCARD_ID\tOPENID\tREASON\tHTTP\tCODE\tATTEMPTS\tLAST_FAILURE\tSTATE\tMESSAGE")
	}
	for r, err := range recs {
		if err != nil {
			_ = tw.Flush()
			return listed, replayed, err
		}
		listed++
		if r.State == deadletter.StateReplayed {
			replayed++
		}
		if asJSON {
			if err := writeJSON(c.stdout, r); err != nil {
				return listed, replayed, err
			}
			continue
		}
		// Every cell comes from Redis: cell escapes what a terminal would
		// obey, and the tabs and line breaks that would shift the table.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", cell(r.OutRequestNo), cell(r.CardID), cell(r.OpenIDMasked),
			cell(string(r.Reason)), cell(httpStatus(r.HTTPStatus)), cell(r.WeChatCode), r.Attempts,
			r.LastFailedAt.Format(time.RFC3339), cell(string(r.State)), cell(truncate(r.Message, 60)))
	}
	return listed, replayed, tw.Flush()
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

func runDeadReplay(ctx context.Context, c *cli, args []string) error {
	rp := &deadReplay{c: c}
	err := rp.main(ctx, args)
	if errors.Is(err, errHelp) {
		return err
	}
	// Every run that got past -h ends with the summary line, even one
	// that replayed nothing: tools read it. The error goes out before it.
	err = c.report(err)
	format := "replayed=%d skipped=%d failed=%d\n"
	if rp.dryRun {
		format = "would replay=%d skipped=%d failed=%d\n"
	}
	fmt.Fprintf(c.stdout, format, rp.replayed, rp.skipped, rp.failed)
	if err == nil && rp.failed > 0 {
		return withCode(exitFailure, nil)
	}
	return err
}

// main parses the flags of dead replay and replays what they select.
func (rp *deadReplay) main(ctx context.Context, args []string) error {
	fs := newFlags(rp.c, "dead replay", "[flags] (--all | --reason CODE | --card-id CARD | --since T | OUT_REQUEST_NO...)", deadReplayAbout)
	var ff filterFlags
	ff.register(fs.FlagSet)
	var tf taskFlags
	tf.register(fs.FlagSet)
	all := fs.Bool("all", false, "replay every dead letter")
	fs.BoolVar(&rp.dryRun, "dry-run", false, "say what would be replayed, change nothing")
	concurrency := fs.Int("concurrency", defaultConcurrency, "`number` of replays in flight at once")
	if err := fs.parse(args); err != nil {
		return err
	}
	names := fs.Args()
	switch {
	case len(names) > 0 && (*all || ff.set()):
		return errors.New("dead replay: name out_request_nos or select with --all or filters, not both")
	case len(names) == 0 && !*all && !ff.set():
		return errors.New("dead replay: say what to replay: out_request_nos, a filter (--reason, --card-id, --since) or --all")
	case *concurrency < 1:
		return fmt.Errorf("--concurrency: must be at least 1, got %d", *concurrency)
	}
	filter, err := ff.filter(time.Now())
	if err != nil {
		return err
	}
	if rp.opts, err = tf.options(fs.redis.queue); err != nil {
		return err
	}
	cn, store, err := openDead(ctx, rp.c, fs, "dead replay")
	if err != nil {
		return err
	}
	defer cn.close()
	rp.store = store
	recs := store.List(ctx, filter)
	if len(names) > 0 {
		recs = rp.named(ctx, names)
	}
	if err := rp.run(ctx, *concurrency, recs); err != nil {
		return fmt.Errorf("dead replay: %w", err)
	}
	return nil
}

// named yields the dead letters of the out_request_nos names; one without
// a dead letter is counted as failed.
func (rp *deadReplay) named(ctx context.Context, names []string) iter.Seq2[deadletter.Record, error] {
	return func(yield func(deadletter.Record, error) bool) {
		for _, no := range names {
			r, err := rp.store.Get(ctx, no)
			if errors.Is(err, deadletter.ErrNotFound) {
				rp.failure(no, errors.New("no dead letter"))
				continue
			}
			if !yield(r, err) {
				return
			}
		}
	}
}

// deadReplay is one run of `enqueue dead replay`: one goroutine reads the
// records, a bounded pool replays them (each replay is a few Redis round
// trips, which a handful in flight hide).
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
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(n)
	// A replay that fails again at once is recorded anew, which moves it
	// to the end of the list being read; once a run is enough.
	seen := map[string]bool{}
	var readErr error
	for r, err := range recs {
		if err != nil {
			readErr = err
			break
		}
		if gctx.Err() != nil {
			break
		}
		if seen[r.OutRequestNo] {
			continue
		}
		seen[r.OutRequestNo] = true
		g.Go(func() error { return rp.replay(gctx, r) })
	}
	err := g.Wait()
	switch {
	case readErr != nil:
		return readErr
	case ctx.Err() != nil:
		// Interrupted: what the replays in flight made of it is beside
		// the point.
		return context.Cause(ctx)
	}
	return err
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
	rp.c.warnf("dead replay: out_request_no=%s: %v", no, err)
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

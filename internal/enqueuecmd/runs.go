package enqueuecmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/schollz/progressbar/v3"

	"github.com/cardimport/cardimport/internal/termsafe"
	"github.com/cardimport/cardimport/results"
)

// exitDead is the status of `--wait` and `runs wait` when the run settled
// with members dead: every member has an end, but some need an operator
// (enqueue dead list, enqueue dead replay).
const exitDead = 3

const runsAbout = `Lists the runs of the queue, newest first (a table, or one JSON object a
line with --json), or with a subcommand:
  enqueue runs show ID   the counts of one run
  enqueue runs wait ID   follow a run until it settles (nothing left waiting):
                         a progress bar on a terminal, a line a change when
                         piped; the last line is
                           imported=N already_member=M dead=K
                         and the exit status 0 when none is dead, 3 when
                         some are.
A run's counts: enqueued, duplicates, invalid, imported, already_member,
dead, waiting; it settles once its producer has closed it and nothing is
left waiting.`

// resultsConn is the results store of a queue and the client under it.
type resultsConn struct {
	*results.Store
	rdb redis.UniversalClient
}

func (r resultsConn) close() { _ = r.rdb.Close() }

// openResults opens the results store of the flags' queue, after checking
// that Redis answers.
func openResults(ctx context.Context, c *cli, rf redisFlags) (resultsConn, error) {
	rdb, err := rf.client(c.getenv)
	if err != nil {
		return resultsConn{}, err
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return resultsConn{}, fmt.Errorf("redis: %w", err)
	}
	rs, err := results.New(rdb, rf.queue)
	if err != nil {
		_ = rdb.Close()
		return resultsConn{}, err
	}
	return resultsConn{Store: rs, rdb: rdb}, nil
}

func runRuns(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "runs", "[show ID | wait ID] [flags]", runsAbout)
	var rf redisFlags
	rf.register(fs, c.getenv)
	asJSON := fs.Bool("json", false, "print JSON, one object a line")
	limit := fs.Int64("limit", 50, "`number` of runs to list at most")
	sub, args := takeWord(args, "show", "wait")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	id := ""
	if sub != "" && fs.NArg() > 0 {
		// Flags may follow the ID too.
		id = fs.Arg(0)
		if code, done := parseFlags(fs, fs.Args()[1:]); done {
			return code
		}
	}
	switch {
	case sub != "" && (id == "" || fs.NArg() > 0):
		c.errorf("runs %s: want one run ID", sub)
		return exitUsage
	case sub == "" && fs.NArg() > 0:
		c.errorf("runs: unexpected argument (subcommands: show ID, wait ID)")
		return exitUsage
	}
	if id != "" {
		if err := results.ValidateRunID(id); err != nil {
			c.errorf("%v", err)
			return exitUsage
		}
	}
	conn, err := openResults(ctx, c, rf)
	if err != nil {
		c.errorf("%v", err)
		return exitFailure
	}
	defer conn.close()
	rs := conn.Store
	switch sub {
	case "show":
		r, err := rs.Run(ctx, id)
		if err != nil {
			c.errorf("%v", err)
			return exitFailure
		}
		printRuns(c.stdout, []results.Run{r}, *asJSON)
		return exitOK
	case "wait":
		return waitRun(ctx, c, rs, id)
	}
	runs, err := rs.Runs(ctx, *limit)
	if err != nil {
		c.errorf("%v", err)
		return exitFailure
	}
	printRuns(c.stdout, runs, *asJSON)
	return exitOK
}

func printRuns(w io.Writer, runs []results.Run, asJSON bool) {
	if asJSON {
		for _, r := range runs {
			_ = writeJSON(w, r)
		}
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTARTED\tENQUEUED\tDUPLICATES\tINVALID\tIMPORTED\tALREADY_MEMBER\tDEAD\tWAITING\tSETTLED")
	for _, r := range runs {
		settled := "-"
		if r.Settled() {
			settled = r.SettledAt.Format(time.RFC3339)
		}
		// Run IDs are validated when a run starts, but read back from
		// Redis, which anyone who can write to it fills.
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", cell(r.ID), r.StartedAt.Format(time.RFC3339),
			r.Enqueued, r.Duplicates, r.Invalid, r.Imported, r.AlreadyMember, r.Dead, r.Waiting, settled)
	}
	_ = tw.Flush()
}

// waitPoll is how often a waiting command reads the run's counts.
const waitPoll = 500 * time.Millisecond

// waitRun follows run id until it settles and prints the outcome line.
func waitRun(ctx context.Context, c *cli, rs *results.Store, id string) int {
	r, err := followRun(ctx, c, rs, id)
	if err != nil {
		c.errorf("%v", err)
		return exitFailure
	}
	fmt.Fprintf(c.stdout, "imported=%d already_member=%d dead=%d\n", r.Imported, r.AlreadyMember, r.Dead)
	if r.Dead > 0 {
		return exitDead
	}
	return exitOK
}

// followRun polls run id until it settles: a progress bar on a terminal
// (stderr), otherwise a plain line on stderr each time the counts change.
func followRun(ctx context.Context, c *cli, rs *results.Store, id string) (results.Run, error) {
	var bar *progressbar.ProgressBar
	if isTerminal(c.stderr) {
		bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(c.stderr), progressbar.OptionSetWidth(30),
			progressbar.OptionClearOnFinish(), progressbar.OptionSetSpinnerChangeInterval(0))
		defer func() { _ = bar.Finish() }()
	}
	var last results.Run
	t := time.NewTicker(waitPoll)
	defer t.Stop()
	for first := true; ; first = false {
		r, err := rs.Run(ctx, id)
		if err != nil && !(errors.Is(err, results.ErrNoRun) && !first) {
			return r, err
		}
		done := r.Imported + r.AlreadyMember + r.Dead
		switch {
		case bar != nil:
			bar.ChangeMax64(max(r.Enqueued, 1))
			_ = bar.Set64(done)
			bar.Describe(fmt.Sprintf("run %s: imported %d, already %d, dead %d, waiting %d", termsafe.String(r.ID), r.Imported, r.AlreadyMember, r.Dead, r.Waiting))
		case first || r != last:
			fmt.Fprintf(c.stderr, "run=%s enqueued=%d imported=%d already_member=%d dead=%d waiting=%d\n",
				termsafe.String(r.ID), r.Enqueued, r.Imported, r.AlreadyMember, r.Dead, r.Waiting)
		}
		last = r
		if r.Settled() {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return r, errInterrupted
		case <-t.C:
		}
	}
}

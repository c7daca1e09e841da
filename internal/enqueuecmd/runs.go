package enqueuecmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/cardimport/cardimport/internal/termsafe"
	"github.com/cardimport/cardimport/results"
)

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

func runRuns(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "runs", "[show ID | wait ID] [flags]", runsAbout)
	asJSON := fs.Bool("json", false, "print JSON, one object a line")
	limit := fs.Int64("limit", 50, "`number` of runs to list at most")
	sub, args := takeWord(args, "show", "wait")
	if err := fs.parse(args); err != nil {
		return err
	}
	id := ""
	if sub != "" && fs.NArg() > 0 {
		// Flags may follow the ID too.
		id = fs.Arg(0)
		if err := fs.parse(fs.Args()[1:]); err != nil {
			return err
		}
	}
	switch {
	case sub != "" && (id == "" || fs.NArg() > 0):
		return fmt.Errorf("runs %s: want one run ID", sub)
	case sub == "" && fs.NArg() > 0:
		return errors.New("runs: unexpected argument (subcommands: show ID, wait ID)")
	}
	if id != "" {
		if err := results.ValidateRunID(id); err != nil {
			return err
		}
	}
	cn, rs, err := fs.openResults(ctx, c)
	if err != nil {
		return err
	}
	defer cn.close()
	var runs []results.Run
	switch sub {
	case "show":
		var r results.Run
		r, err = rs.Run(ctx, id)
		runs = []results.Run{r}
	case "wait":
		return waitRun(ctx, c, rs, id)
	default:
		runs, err = rs.Runs(ctx, *limit)
	}
	if err != nil {
		return err
	}
	printRuns(c.stdout, runs, *asJSON)
	return nil
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
func waitRun(ctx context.Context, c *cli, rs *results.Store, id string) error {
	r, err := followRun(ctx, c, rs, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "imported=%d already_member=%d dead=%d\n", r.Imported, r.AlreadyMember, r.Dead)
	if r.Dead > 0 {
		return withCode(exitDead, nil)
	}
	return nil
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

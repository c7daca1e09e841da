package enqueuecmd

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/internal/guard"
	"github.com/cardimport/cardimport/internal/termsafe"
)

const statusAbout = `Shows where the import of one out_request_no stands: its state (pending,
active, scheduled, retry, archived, completed — or dead when only the
dead-letter store still holds it), the retries it spent, its last error,
when it is tried next, its outcome and card code once done, and its dead
letter if it has one. A finished import is kept for the retention window
(72h by default); after that, and for a number never enqueued, status says
it is not found and exits 1.`

// statusReport is what `enqueue status` shows, and its --json form: the
// member's status and the circuit.
type statusReport struct {
	deadletter.Status
	// Circuit is the state of the breaker the workers of the queue share:
	// while it is open, an import that is not finished waits for it.
	Circuit *guard.State `json:"circuit,omitempty"`
}

func runStatus(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "status", "[flags] OUT_REQUEST_NO", statusAbout)
	asJSON := fs.Bool("json", false, "print one JSON object instead of text")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("status: want one OUT_REQUEST_NO, got %d arguments; flags go before it", fs.NArg())
	}
	no := fs.Arg(0)
	// The task, its dead letter and the circuit are read on one client.
	cn, err := fs.connect(c)
	if err != nil {
		return err
	}
	defer cn.close()
	rep, err := readStatus(ctx, cn, no)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if *asJSON {
		if err := writeJSON(c.stdout, rep); err != nil {
			return fmt.Errorf("status: %w", err)
		}
		return nil
	}
	rep.print(c)
	return nil
}

// readStatus reads where the import of out_request_no no stands, and the
// circuit.
func readStatus(ctx context.Context, cn *conn, no string) (statusReport, error) {
	store, err := cn.dead()
	if err != nil {
		return statusReport{}, err
	}
	if err := cn.ping(ctx); err != nil {
		return statusReport{}, err
	}
	st, err := store.Status(ctx, no)
	if err != nil {
		return statusReport{}, fmt.Errorf("out_request_no=%s: %w", no, err)
	}
	circuit, err := guard.ReadState(ctx, cn.rdb, cn.queue)
	if err != nil {
		return statusReport{}, fmt.Errorf("circuit: %w", err)
	}
	return statusReport{Status: st, Circuit: &circuit}, nil
}

func (rep statusReport) print(c *cli) {
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	// Values come from Redis: termsafe keeps their control characters,
	// tabs and line breaks off the terminal and out of the layout.
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, termsafe.String(v))
		}
	}
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	line("out_request_no", rep.OutRequestNo)
	if rep.State == "dead" {
		line("state", "dead (only in the dead-letter store: asynq trimmed or deleted its task)")
	} else {
		line("state", rep.State)
		line("attempts", fmt.Sprint(*rep.Attempts))
		line("retries", fmt.Sprintf("%d of %d spent", *rep.Retried, *rep.RetryBudget))
	}
	line("last_error", rep.LastError)
	line("last_failed_at", stamp(rep.LastFailedAt))
	line("next_attempt_at", stamp(rep.NextAttemptAt))
	line("outcome", rep.Outcome)
	line("code", rep.Code)
	line("completed_at", stamp(rep.CompletedAt))
	if rep.Circuit != nil && rep.Circuit.Open && rep.Outcome == "" {
		line("circuit", fmt.Sprintf("open since %s: %s; imports wait without spending retries (%s)",
			stamp(rep.Circuit.Since), rep.Circuit.Cause, rep.Circuit.Hint))
	}
	if d := rep.DeadLetter; d != nil {
		reason := string(d.Reason)
		if d.HTTPStatus != 0 {
			reason += fmt.Sprintf(" http %d", d.HTTPStatus)
		}
		if d.WeChatCode != "" {
			reason += " " + d.WeChatCode
		}
		line("dead_letter", fmt.Sprintf("%s, %s", d.State, reason))
		line("  card_id", d.CardID)
		line("  openid", d.OpenIDMasked)
		line("  message", d.Message)
		line("  request_id", d.RequestID)
		line("  attempts", fmt.Sprint(d.Attempts))
		line("  first_failed_at", stamp(d.FirstFailedAt))
		line("  last_failed_at", stamp(d.LastFailedAt))
		if d.Replays > 0 {
			line("  replays", fmt.Sprintf("%d, last at %s", d.Replays, stamp(d.ReplayedAt)))
		}
	}
	_ = tw.Flush()
}

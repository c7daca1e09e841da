package enqueuecmd

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cardimport/cardimport/results"
)

const resultsAbout = `Reads the outcomes of the queue's imports (kept RESULTS_RETENTION, 30 days
by default). No openid is ever in them: a member is its out_request_no.

  enqueue results export [--run ID] [--since TIME] [--format csv|jsonl]
      one line per out_request_no with its latest outcome, oldest first
      (a dead member replayed and then imported shows as imported). CSV
      header: ` + exportHeader + `
  enqueue results follow --group NAME [--consumer NAME] [--format jsonl|csv]
      every outcome as it happens, read through a Redis consumer group:
      each is acknowledged only after its line was written, so a follower
      killed mid-way and started again with the same names writes again
      what it had not acknowledged (at least once); followers of one group
      share the outcomes. Runs until interrupted.`

// exportHeader is the CSV header of export and follow.
const exportHeader = "out_request_no,card_id,run,outcome,code,wechat_code,message,finished_at"

func runResults(ctx context.Context, c *cli, args []string) error {
	sub, args := takeWord(args, "export", "follow")
	if sub == "" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fmt.Fprintf(c.stderr, "usage: enqueue results export|follow [flags]\n\n%s\n", resultsAbout)
			return errHelp
		}
		return errors.New("results: want export or follow (enqueue results -h)")
	}
	fs := newFlags(c, "results "+sub, "[flags]", resultsAbout)
	format := fs.String("format", "", "`format` of the lines: csv or jsonl (default csv for export, jsonl for follow)")
	run := fs.String("run", "", "export only the outcomes of this run `ID`")
	since := fs.String("since", "", "export only outcomes at or after this `time`: RFC3339, or a duration back from now (24h)")
	group := fs.String("group", "", "consumer group `name` (follow; required)")
	host, _ := os.Hostname()
	consumer := fs.String("consumer", host, "consumer `name` within the group (follow); the same name after a restart gets back what was not acknowledged")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("results %s: takes no arguments", sub)
	}
	if *format == "" {
		*format = map[string]string{"export": "csv", "follow": "jsonl"}[sub]
	}
	if *format != "csv" && *format != "jsonl" {
		return fmt.Errorf("--format: want csv or jsonl, got %q", *format)
	}
	var f results.Filter
	if *run != "" {
		if err := results.ValidateRunID(*run); err != nil {
			return fmt.Errorf("--%w", err)
		}
		f.Run = *run
	}
	if *since != "" {
		t, err := parseSince(*since, time.Now())
		if err != nil {
			return err
		}
		f.Since = t
	}
	if sub == "follow" && *group == "" {
		return errors.New("results follow: --group is required")
	}
	cn, rs, err := fs.openResults(ctx, c)
	if err != nil {
		return err
	}
	defer cn.close()
	w := newEventWriter(c.stdout, *format)
	if sub == "export" {
		n := 0
		err := rs.Export(ctx, f, func(e results.Event) error { n++; return w.write(e) })
		if err == nil {
			err = w.flush()
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "exported=%d\n", n)
		return nil
	}
	follower, err := results.NewFollower(cn.rdb, cn.queue, *group, *consumer)
	if err != nil {
		return err
	}
	return follower.Follow(ctx, func(_ context.Context, e results.Event) error {
		// Written and flushed before the acknowledgement: a follower
		// killed now writes it again on restart, never loses it.
		if err := w.write(e); err != nil {
			return err
		}
		return w.flush()
	})
}

// takeWord removes from args the first of words that stands as an argument
// of its own (not a flag's value: flags here take their value after "=" or
// as the next argument, so a word right after a "-flag" is its value) and
// returns it, or "" when none is there.
func takeWord(args []string, words ...string) (string, []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			if !strings.Contains(a, "=") && i+1 < len(args) && !isBoolFlag(a) {
				i++ // the flag's value
			}
			continue
		}
		for _, w := range words {
			if a == w {
				return w, append(append([]string(nil), args[:i]...), args[i+1:]...)
			}
		}
		return "", args
	}
	return "", args
}

// isBoolFlag reports whether a flag takes no value.
func isBoolFlag(a string) bool {
	switch strings.TrimLeft(a, "-") {
	case "json", "wait", "dry-run", "h", "help":
		return true
	}
	return false
}

// parseSince reads --since: an RFC3339 time, or a duration back from now.
func parseSince(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("--since: duration must be positive, got %s", v)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since: %q is neither a duration like 24h nor an RFC3339 time like 2026-11-28T00:00:00Z", v)
	}
	return t, nil
}

// eventWriter writes outcome events as CSV (with the header first) or JSON
// lines. JSON lines go through termsafe.JSON, like every JSON the command
// prints; CSV is data for other programs and is written as it is.
type eventWriter struct {
	csv  *csv.Writer
	json io.Writer
	head bool
}

func newEventWriter(w io.Writer, format string) *eventWriter {
	if format == "csv" {
		return &eventWriter{csv: csv.NewWriter(w)}
	}
	return &eventWriter{json: w}
}

func (w *eventWriter) write(e results.Event) error {
	if w.json != nil {
		return writeJSON(w.json, e)
	}
	if !w.head {
		w.head = true
		if err := w.csv.Write(strings.Split(exportHeader, ",")); err != nil {
			return err
		}
	}
	return w.csv.Write([]string{e.OutRequestNo, e.CardID, e.Run, e.Outcome, e.Code, e.WeChatCode, e.Message,
		e.FinishedAt.Format(time.RFC3339Nano)})
}

func (w *eventWriter) flush() error {
	if w.csv == nil {
		return nil
	}
	if !w.head {
		// An empty export still names its columns.
		w.head = true
		if err := w.csv.Write(strings.Split(exportHeader, ",")); err != nil {
			return err
		}
	}
	w.csv.Flush()
	return w.csv.Error()
}

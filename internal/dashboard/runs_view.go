package dashboard

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/results"
)

// The Runs page's templates, embedded: the page needs no build step and
// fetches nothing, from the Internet or elsewhere (its CSS is inline).
//
//go:embed runs_templates/*.html
var templateFS embed.FS

// views are the Runs page's templates, each with the shared layout.
type views struct {
	list, run, member, failure *template.Template
}

var templateFuncs = template.FuncMap{"n": thousands}

func parseViews() (views, error) {
	parse := func(name string) (*template.Template, error) {
		t, err := template.New("layout.html").Funcs(templateFuncs).ParseFS(templateFS, "runs_templates/layout.html", "runs_templates/"+name)
		if err != nil {
			return nil, fmt.Errorf("dashboard: template %s: %w", name, err)
		}
		return t, nil
	}
	var v views
	var err error
	for _, x := range []struct {
		t    **template.Template
		name string
	}{{&v.list, "runs.html"}, {&v.run, "run.html"}, {&v.member, "member.html"}, {&v.failure, "error.html"}} {
		if *x.t, err = parse(x.name); err != nil {
			return v, err
		}
	}
	return v, nil
}

// render writes a page. It renders into a buffer first, so that a
// template error is a 500 rather than half a page.
func (p *runsPage) render(w http.ResponseWriter, status int, t *template.Template, data any) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		http.Error(w, "dashboard: render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// Pages show members' numbers and refusals: no cache keeps them.
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Referrer-Policy", "same-origin")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// page is what every page's layout shows.
type page struct {
	Title    string
	Queue    string
	ReadOnly bool
	// Root prefixes the dashboard's own links; Asynqmon is asynqmon's
	// page of the queue.
	Root     string
	Asynqmon string
	// Search is the out_request_no in the search box.
	Search string
	// Refresh reloads the page every few seconds while a run is in
	// progress.
	Refresh bool
	Now     string
}

func (p *runsPage) pageOf(title string) page {
	return page{
		Title: title, Queue: p.queue, ReadOnly: p.readOnly, Root: p.root,
		Asynqmon: p.asynqmonQueue(), Now: p.now().UTC().Format("2006-01-02 15:04:05 UTC"),
	}
}

// asynqmonQueue is asynqmon's page of the queue.
func (p *runsPage) asynqmonQueue() string { return p.root + "/queues/" + url.PathEscape(p.queue) }

// asynqmonTask is asynqmon's page of one task.
func (p *runsPage) asynqmonTask(id string) string {
	return p.asynqmonQueue() + "/tasks/" + url.PathEscape(id)
}

type listView struct {
	page
	Runs  []runRow
	Shown int
}

func (v *listView) anyInProgress() bool {
	for _, r := range v.Runs {
		if !r.Settled() {
			return true
		}
	}
	return false
}

type runView struct {
	page
	Run      runRow
	Refusals []*refusal
	Flash    *flash
	// CSRF is the token of the Replay forms; empty when read-only.
	CSRF string
}

type memberView struct {
	page
	No       string
	NotFound string
	Status   *memberStatus
}

type errorView struct {
	page
	Message, Detail string
}

// runRow is a run as the pages show it.
type runRow struct {
	results.Run
	Done int64
	// Percent is the share of the enqueued members that finished.
	Percent int
	// Bar holds the widths of the progress bar's parts, as CSS lengths.
	Bar struct{ Imported, AlreadyMember, Dead string }
	// State is "settled", "finishing" (everything handed over, some
	// waiting) or "enqueueing" (the producer has not closed the run).
	State      string
	Started    string
	StartedAgo string
	// Took is how long a settled run took, or how long it has run.
	Took string
}

func (p *runsPage) runOf(r results.Run) runRow {
	row := runRow{Run: r, Done: r.Imported + r.AlreadyMember + r.Dead}
	total := max(r.Enqueued, row.Done)
	width := func(n int64) string {
		if total == 0 {
			return "0%"
		}
		return strconv.FormatFloat(100*float64(n)/float64(total), 'f', 2, 64) + "%"
	}
	row.Bar.Imported, row.Bar.AlreadyMember, row.Bar.Dead = width(r.Imported), width(r.AlreadyMember), width(r.Dead)
	if total > 0 {
		row.Percent = int(100 * row.Done / total)
	}
	now := p.now()
	switch {
	case r.Settled():
		row.State, row.Took = "settled", duration(r.SettledAt.Sub(r.StartedAt))
	case r.Closed:
		row.State, row.Took = "finishing", duration(now.Sub(r.StartedAt))
	default:
		row.State, row.Took = "enqueueing", duration(now.Sub(r.StartedAt))
	}
	if !r.StartedAt.IsZero() {
		row.Started = r.StartedAt.UTC().Format("2006-01-02 15:04:05 UTC")
		row.StartedAgo = duration(now.Sub(r.StartedAt)) + " ago"
	}
	return row
}

// memberStatus is deadletter.Status as the member page shows it: every
// field a string, "" for unknown. It holds no openid but the masked one.
type memberStatus struct {
	OutRequestNo, Run, State                            string
	Attempts, Retried, RetryBudget                      string
	LastError, LastFailedAt, NextAttemptAt              string
	Outcome, Code, CompletedAt                          string
	Asynqmon                                            string
	Dead                                                *deadletter.Record
	DeadFirstFailedAt, DeadLastFailedAt, DeadReplayedAt string
}

func (p *runsPage) statusOf(st deadletter.Status) *memberStatus {
	n := func(v *int) string {
		if v == nil {
			return ""
		}
		return strconv.Itoa(*v)
	}
	m := &memberStatus{
		OutRequestNo: st.OutRequestNo, Run: st.Run, State: st.State,
		Attempts: n(st.Attempts), Retried: n(st.Retried), RetryBudget: n(st.RetryBudget),
		LastError: st.LastError, LastFailedAt: p.when(st.LastFailedAt), NextAttemptAt: p.when(st.NextAttemptAt),
		Outcome: st.Outcome, Code: st.Code, CompletedAt: p.when(st.CompletedAt),
		Dead: st.DeadLetter,
	}
	if st.State != "dead" {
		// asynq still holds the task.
		m.Asynqmon = p.asynqmonTask(st.OutRequestNo)
	}
	if d := st.DeadLetter; d != nil {
		m.DeadFirstFailedAt, m.DeadLastFailedAt, m.DeadReplayedAt = p.when(d.FirstFailedAt), p.when(d.LastFailedAt), p.when(d.ReplayedAt)
	}
	return m
}

// when is a time as the pages show it, with how long ago it was.
func (p *runsPage) when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	s := t.UTC().Format("2006-01-02 15:04:05 UTC")
	d := p.now().Sub(t)
	if d >= 0 {
		return s + " (" + duration(d) + " ago)"
	}
	return s + " (in " + duration(-d) + ")"
}

// duration is d rounded for a person: 42s, 3m12s, 5h04m, 3d07h.
func duration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

// thousands writes n with thin separators, 12,345, for counts read at a
// glance.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var out []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

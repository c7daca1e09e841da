package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/results"
	"github.com/cardimport/cardimport/tasks"
)

// The Runs page is the dashboard's own page beside asynqmon: what an
// operator looks at after a night's import instead of paging through
// asynqmon's generic task lists.
//
//	GET  /runs               runs newest first, with a progress bar and counts
//	GET  /runs/{id}          a run's counts, and its refusals grouped by
//	                         WeChat code and message, a Replay button each
//	POST /runs/{id}/replay   replays one group's dead letters (not read-only)
//	GET  /member?no=…        a member's whole story, openid masked
//
// The member search is not under /runs/ because "member" is a valid run
// ID. Every path is under Config.RootPath, behind the dashboard's login and
// browser checks (New), and server-rendered from embedded templates.

// runsShown is how many runs the list shows, newest first.
const runsShown = 50

// runsPage serves the Runs page of one queue.
type runsPage struct {
	queue    string
	root     string // RootPath without its trailing slash
	readOnly bool
	dead     *deadletter.Store
	results  *results.Store
	views    views
	log      zerolog.Logger
	now      func() time.Time
}

func newRunsPage(cfg Config) (*runsPage, error) {
	views, err := parseViews()
	if err != nil {
		return nil, err
	}
	dead, err := deadletter.New(cfg.Redis, cfg.Queue)
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	log := zerolog.Nop()
	if cfg.Logger != nil {
		log = *cfg.Logger
	}
	return &runsPage{
		queue: cfg.Queue, root: strings.TrimSuffix(cfg.RootPath, "/"), readOnly: cfg.ReadOnly,
		dead: dead, results: dead.Results(), views: views, log: log, now: time.Now,
	}, nil
}

func (p *runsPage) close() error { return p.dead.Close() }

// href is the URL path of one of the dashboard's pages.
func (p *runsPage) href(path string) string { return p.root + path }

func (p *runsPage) register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+p.href("/runs"), p.list)
	mux.HandleFunc("GET "+p.href("/runs/{$}"), p.list)
	mux.HandleFunc("GET "+p.href("/runs/{id}"), p.run)
	mux.HandleFunc("POST "+p.href("/runs/{id}/replay"), p.replay)
	mux.HandleFunc("GET "+p.href("/member"), p.member)
}

// list shows the newest runs.
func (p *runsPage) list(w http.ResponseWriter, r *http.Request) {
	runs, err := p.results.Runs(r.Context(), runsShown)
	if err != nil {
		p.fail(w, http.StatusInternalServerError, "The runs could not be read from Redis.", err)
		return
	}
	v := listView{page: p.pageOf("Runs"), Shown: runsShown}
	for _, run := range runs {
		v.Runs = append(v.Runs, p.runOf(run))
	}
	v.Refresh = v.anyInProgress()
	p.render(w, http.StatusOK, p.views.list, &v)
}

// run shows one run: its counts and its refusals.
func (p *runsPage) run(w http.ResponseWriter, r *http.Request) {
	run, ok := p.readRun(w, r)
	if !ok {
		return
	}
	groups, err := p.refusals(r.Context(), run)
	if err != nil {
		p.fail(w, http.StatusInternalServerError, "The run's outcomes could not be read from Redis.", err)
		return
	}
	v := runView{page: p.pageOf("Run " + run.ID), Run: p.runOf(run), Refusals: groups}
	v.Flash = flashOf(r, groups)
	v.Refresh = !run.Settled() && v.Flash == nil
	if !p.readOnly {
		v.CSRF = csrfToken(w, r, p.href("/runs"))
	}
	p.render(w, http.StatusOK, p.views.run, &v)
}

// readRun reads the run the path names, or answers 404 or 500 itself.
func (p *runsPage) readRun(w http.ResponseWriter, r *http.Request) (results.Run, bool) {
	id := r.PathValue("id")
	run, err := p.results.Run(r.Context(), id)
	switch {
	case errors.Is(err, results.ErrNoRun), errors.Is(err, results.ErrInvalidRunID):
		p.fail(w, http.StatusNotFound, fmt.Sprintf("No run %q in queue %s: it never started, or it is older than the results' retention.", id, p.queue), nil)
		return run, false
	case err != nil:
		p.fail(w, http.StatusInternalServerError, "The run could not be read from Redis.", err)
		return run, false
	}
	return run, true
}

// member shows where the import of one out_request_no stands.
func (p *runsPage) member(w http.ResponseWriter, r *http.Request) {
	no := strings.TrimSpace(r.URL.Query().Get("no"))
	v := memberView{page: p.pageOf("Member"), No: no}
	v.Search = no
	switch {
	case no == "":
		p.render(w, http.StatusOK, p.views.member, &v)
		return
	case len(no) > tasks.MaxOutRequestNoLen:
		v.NotFound = fmt.Sprintf("An out_request_no has at most %d characters.", tasks.MaxOutRequestNoLen)
		p.render(w, http.StatusNotFound, p.views.member, &v)
		return
	}
	st, err := p.dead.Status(r.Context(), no)
	switch {
	case errors.Is(err, deadletter.ErrStatusNotFound):
		v.NotFound = "Queue " + p.queue + " does not know this out_request_no: " + err.Error() + "."
		p.render(w, http.StatusNotFound, p.views.member, &v)
		return
	case err != nil:
		p.fail(w, http.StatusInternalServerError, "The member's status could not be read from Redis.", err)
		return
	}
	v.Status = p.statusOf(st)
	p.render(w, http.StatusOK, p.views.member, &v)
}

// fail answers an error page. The error itself is Redis's or the
// network's, never a member's data.
func (p *runsPage) fail(w http.ResponseWriter, status int, msg string, err error) {
	v := errorView{page: p.pageOf(http.StatusText(status)), Message: msg}
	if err != nil {
		v.Detail = err.Error()
	}
	p.render(w, status, p.views.failure, &v)
}

// requestContext is the context of a change an operator asked for: it
// runs to its end even if the browser goes away meanwhile, within the
// server's write timeout.
func requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.Context()), 50*time.Second)
}

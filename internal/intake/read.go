package intake

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/results"
	"github.com/cardimport/cardimport/tasks"
)

// Page sizes of GET /v1/results.
const (
	DefaultResultsLimit = 100
	MaxResultsLimit     = 1000
)

// ResultsPage is the answer to GET /v1/results.
type ResultsPage struct {
	Results []results.Event `json:"results"`
	// Next is the cursor of the next page (after=…); empty when the
	// outcomes kept so far are all read. More may come later: ask again
	// with the last cursor.
	Next string `json:"next"`
}

// run handles GET /v1/runs/{id}.
func (s *Server) run(w http.ResponseWriter, r *http.Request) {
	if !s.allow(w, r) {
		return
	}
	id := r.PathValue("id")
	if err := results.ValidateRunID(id); err != nil {
		writeJSON(w, http.StatusBadRequest, errorResponse{Error: "run: not a run id"})
		return
	}
	run, err := s.cfg.Store.Results().Run(r.Context(), id)
	switch {
	case errors.Is(err, results.ErrNoRun):
		writeJSON(w, http.StatusNotFound, errorResponse{Error: "no such run (never started, or past RESULTS_RETENTION)"})
	case err != nil:
		s.unavailable(w, err)
	default:
		writeJSON(w, http.StatusOK, run)
	}
}

// results handles GET /v1/results?run=&after=&limit=.
func (s *Server) results(w http.ResponseWriter, r *http.Request) {
	if !s.allow(w, r) {
		return
	}
	q := r.URL.Query()
	var f results.Filter
	if run := q.Get("run"); run != "" {
		if results.ValidateRunID(run) != nil {
			writeJSON(w, http.StatusBadRequest, errorResponse{Error: "run: not a run id"})
			return
		}
		f.Run = run
	}
	if since := q.Get("since"); since != "" {
		t, err := time.Parse(time.RFC3339, since)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorResponse{Error: "since: not an RFC3339 time"})
			return
		}
		f.Since = t
	}
	limit := DefaultResultsLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxResultsLimit {
			writeJSON(w, http.StatusBadRequest, errorResponse{Error: "limit: must be a whole number from 1 to " + strconv.Itoa(MaxResultsLimit)})
			return
		}
		limit = n
	}
	page, next, err := s.cfg.Store.Results().Page(r.Context(), f, q.Get("after"), limit)
	if errors.Is(err, results.ErrBadCursor) {
		writeJSON(w, http.StatusBadRequest, errorResponse{Error: "after: not a cursor this API gave"})
		return
	}
	if err != nil {
		s.unavailable(w, err)
		return
	}
	if page == nil {
		page = []results.Event{}
	}
	writeJSON(w, http.StatusOK, ResultsPage{Results: page, Next: next})
}

// member handles GET /v1/imports/{out_request_no}: where one member's
// import stands (its openid masked).
func (s *Server) member(w http.ResponseWriter, r *http.Request) {
	if !s.allow(w, r) {
		return
	}
	no := r.PathValue("out_request_no")
	if err := (tasks.Payload{CardID: "x", OpenID: "x", OutRequestNo: no}).Validate(); err != nil {
		writeJSON(w, http.StatusBadRequest, errorResponse{Error: "out_request_no: not a valid number"})
		return
	}
	st, err := s.cfg.Store.Status(r.Context(), no)
	switch {
	case errors.Is(err, deadletter.ErrStatusNotFound):
		writeJSON(w, http.StatusNotFound, errorResponse{Error: err.Error()})
	case err != nil:
		s.unavailable(w, err)
	default:
		writeJSON(w, http.StatusOK, st)
	}
}

// allow checks a request's bearer token, answering 401 when it fails.
func (s *Server) allow(w http.ResponseWriter, r *http.Request) bool {
	if s.authorized(r) {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="intake"`)
	writeJSON(w, http.StatusUnauthorized, errorResponse{Error: "missing or wrong bearer token (Authorization: Bearer $INTAKE_TOKEN)"})
	return false
}

// unavailable answers 503 for a Redis that did not answer; the error is
// logged, not answered: it names hosts the caller has no business knowing.
func (s *Server) unavailable(w http.ResponseWriter, err error) {
	s.cfg.Logger.Error().Err(err).Msg("read")
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusServiceUnavailable, errorResponse{Error: "the queue cannot be reached; ask again"})
}

package intake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/cardimport/cardimport/internal/memberfile"
	"github.com/cardimport/cardimport/results"
	"github.com/cardimport/cardimport/tasks"
)

// Response is the answer to POST /v1/imports.
type Response struct {
	// Run is the run the members went into: the request's ?run=, or a
	// new one. GET /v1/runs/{run} follows it.
	Run string `json:"run"`
	// Enqueued counts the members put into the queue.
	Enqueued int `json:"enqueued"`
	// Duplicates counts the members whose out_request_no was already queued
	// (or finished within its retention), or repeats one earlier in the
	// request.
	Duplicates int `json:"duplicates"`
	// Invalid lists the members refused, in request order.
	Invalid []Invalid `json:"invalid"`
	// Error says why the request failed as a whole; empty on success.
	Error string `json:"error,omitempty"`
}

// Invalid is one refused member.
type Invalid struct {
	// Index is the member's 0-based position: its index in a JSON array,
	// or its line number less one in JSON lines.
	Index int `json:"index"`
	// Error names the field and the problem, never the value.
	Error string `json:"error"`
}

// errorResponse is the answer to a request refused as a whole.
type errorResponse struct {
	Error string `json:"error"`
}

// requestError refuses a request as a whole with an HTTP status.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

// member is one decoded member of a request.
type member struct {
	index   int
	payload tasks.Payload
	err     *memberfile.RowError
}

// imports handles POST /v1/imports.
func (s *Server) imports(w http.ResponseWriter, r *http.Request) {
	if !s.allow(w, r) {
		return
	}
	// Only JSON types: a page of another site can make a browser send
	// text/plain or a form without asking first, never JSON.
	array, ok := jsonMediaTypes[mediaType(r)]
	if !ok {
		w.Header().Set("Accept-Post", "application/json, application/x-ndjson")
		writeJSON(w, http.StatusUnsupportedMediaType, errorResponse{Error: "Content-Type must be application/json (a JSON array of members) or application/x-ndjson (JSON lines)"})
		return
	}
	// A slot is taken before the body is read: the body is what costs
	// memory.
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, errorResponse{Error: fmt.Sprintf("%d batches are being handled already; send this one again in a second", s.cfg.MaxInFlight)})
		return
	}
	run := r.URL.Query().Get("run")
	if run == "" {
		run = results.NewRunID(time.Now())
	} else if err := results.ValidateRunID(run); err != nil {
		writeJSON(w, http.StatusBadRequest, errorResponse{Error: strings.TrimPrefix(err.Error(), results.ErrInvalidRunID.Error()+": ")})
		return
	}
	producer, err := s.cfg.Producer.InRun(s.cfg.Store.Results(), run)
	if err != nil {
		s.cfg.Logger.Error().Err(err).Msg("run")
		writeJSON(w, http.StatusInternalServerError, errorResponse{Error: "the intake's queue has no results store"})
		return
	}
	members, err := s.decode(w, r, array)
	if err != nil {
		var re *requestError
		if !errors.As(err, &re) {
			re = &requestError{status: http.StatusBadRequest, msg: err.Error()}
		}
		writeJSON(w, re.status, errorResponse{Error: re.msg})
		return
	}

	resp := Response{Run: run, Invalid: []Invalid{}}
	valid := make([]tasks.Payload, 0, len(members))
	at := make([]int, 0, len(members))
	for _, m := range members {
		if m.err != nil {
			resp.Invalid = append(resp.Invalid, Invalid{Index: m.index, Error: problem(m.err)})
			continue
		}
		valid = append(valid, m.payload)
		at = append(at, m.index)
	}
	done, enqErr := producer.EnqueueMany(r.Context(), valid)
	if enqErr == nil {
		// Members refused while decoding never reached the Producer; the
		// run counts them too. The batch is the run's whole, unless a
		// later request names the same run again (which reopens it).
		enqErr = s.cfg.Store.Results().CountEnqueued(r.Context(), run, 0, 0, int64(len(resp.Invalid)))
	}
	if enqErr == nil {
		enqErr = producer.CloseRun(r.Context())
	}
	for j, res := range done {
		switch {
		case res.Err == nil && res.Duplicate:
			resp.Duplicates++
		case res.Err == nil:
			resp.Enqueued++
		case errors.Is(res.Err, tasks.ErrInvalidPayload):
			// Decoding validated already; kept so that no member goes
			// unaccounted for should the rules ever differ.
			resp.Invalid = append(resp.Invalid, Invalid{Index: at[j], Error: res.Err.Error()})
		}
	}
	if stats, ok := r.Context().Value(statsKey{}).(*requestStats); ok {
		*stats = requestStats{counted: true, enqueued: resp.Enqueued, duplicates: resp.Duplicates, invalid: len(resp.Invalid)}
	}
	if enqErr != nil {
		// The Redis error is logged, not answered: it names hosts the
		// caller has no business knowing.
		s.cfg.Logger.Error().Err(enqErr).Msg("enqueue batch")
		resp.Error = "the queue cannot be reached; send the request again: members already enqueued come back as duplicates"
		w.Header().Set("Retry-After", retryAfterRedis)
		writeJSON(w, http.StatusServiceUnavailable, resp)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// problem is a refusal without the line prefix: the index says where.
func problem(e *memberfile.RowError) string {
	c := *e
	c.Line = 0
	return c.Error()
}

// jsonMediaTypes are the Content-Types POST /v1/imports takes, each with
// whether its body is a JSON array (or else JSON lines).
var jsonMediaTypes = map[string]bool{
	"application/json":        true,
	"application/x-ndjson":    false,
	"application/jsonl":       false,
	"application/x-jsonlines": false,
	"application/jsonlines":   false,
}

// decode reads and decodes the body: a JSON array when array is set (the
// Content-Type is application/json), JSON lines otherwise. A JSON array
// that does not parse is refused whole (400), since its members cannot be
// told apart; a line of JSON lines that does not parse is one invalid
// member, as in `enqueue file`.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, array bool) ([]member, error) {
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, s.tooLarge()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, s.tooLarge()
		}
		return nil, fmt.Errorf("read body: %w", err)
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, errors.New("empty body: want a JSON array of members or JSON lines")
	}
	if array && trimmed[0] != '[' {
		return nil, errors.New("an application/json body must be a JSON array of members; send JSON lines as application/x-ndjson")
	}
	if array {
		return s.decodeArray(trimmed)
	}
	return s.decodeLines(body)
}

func mediaType(r *http.Request) string {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return mt
}

func (s *Server) tooLarge() error {
	return &requestError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("body is larger than %d bytes; split the batch", s.cfg.MaxBodyBytes)}
}

func (s *Server) tooMany() error {
	return &requestError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("more than %d members; split the batch", s.cfg.MaxMembers)}
}

func (s *Server) decodeArray(body []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("not a JSON array: %v", err)
	}
	var members []member
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("not a JSON array: member %d: %v", len(members), err)
		}
		if len(members) == s.cfg.MaxMembers {
			return nil, s.tooMany()
		}
		m := member{index: len(members)}
		p, err := memberfile.DecodeJSON(raw)
		if err != nil {
			m.err = asRowError(err)
		} else {
			m.payload = p
		}
		members = append(members, m)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("not a JSON array: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not a JSON array: data after its closing ]")
	}
	return members, nil
}

func (s *Server) decodeLines(body []byte) ([]member, error) {
	r, err := memberfile.NewReader(bytes.NewReader(body), memberfile.FormatJSONL)
	if err != nil {
		return nil, err
	}
	var members []member
	for {
		row, err := r.Next()
		if err == io.EOF {
			return members, nil
		}
		if err != nil {
			return nil, err
		}
		if len(members) == s.cfg.MaxMembers {
			return nil, s.tooMany()
		}
		m := member{index: row.Line - 1, payload: row.Payload}
		if row.Err != nil {
			m.err = asRowError(row.Err)
		}
		members = append(members, m)
	}
}

func asRowError(err error) *memberfile.RowError {
	var re *memberfile.RowError
	if errors.As(err, &re) {
		return re
	}
	return &memberfile.RowError{Problem: err.Error(), Err: err}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

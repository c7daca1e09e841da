package wechatpaytest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// maxBodyBytes bounds a request body; an import body is a few hundred bytes.
const maxBodyBytes = 1 << 20

// importRoute is the import endpoint as a ServeMux pattern; clients build
// the path with wechatpay.ImportPath.
const importRoute = "/v3/marketing/membercard-open/cards/{card_id}/users/import"

// Emulator is the WeChat Pay endpoint as an http.Handler. It holds every
// member imported, the fault controls and the statistics; all its methods
// are safe for concurrent use. Use NewServer to run it on a local port, or
// mount it in a process of your own.
type Emulator struct {
	keys               *Keys
	clock              func() time.Time
	firstAttemptFaults float64
	mux                *http.ServeMux
	quit               chan struct{}
	quitOnce           sync.Once

	mu      sync.Mutex // guards everything below
	latency time.Duration
	limiter *windowLimiter
	faults  faults
	members members
	stats   Stats
	// admitted counts the requests the rate limit let through (Admitted).
	admitted struct {
		n           int
		first, last time.Time
	}
}

// New returns an emulator for the merchant and WeChat identities in keys.
// It panics when keys lacks a key, as httptest.NewServer panics when it
// cannot listen: both are mistakes in the test, not conditions to handle.
func New(keys *Keys, opts ...Option) *Emulator {
	if keys == nil || keys.MchPrivateKey == nil || keys.MchCert == nil || keys.PublicKeyPrivate == nil ||
		keys.PlatformCert == nil || keys.PlatformPrivateKey == nil || len(keys.APIv3Key) != 32 {
		panic("wechatpaytest: New needs complete Keys (see GenerateKeys)")
	}
	cfg := config{clock: time.Now}
	for _, opt := range opts {
		opt(&cfg)
	}
	e := &Emulator{
		keys:               keys,
		clock:              cfg.clock,
		firstAttemptFaults: cfg.firstAttemptFaults,
		quit:               make(chan struct{}),
		latency:            cfg.latency,
		members:            newMembers(),
		stats:              Stats{Refusals: map[string]int{}},
	}
	if cfg.rateLimit > 0 {
		e.limiter = newWindowLimiter(cfg.rateLimit)
	}
	e.mux = http.NewServeMux()
	e.mux.HandleFunc("POST "+importRoute, e.handleImport)
	e.mux.HandleFunc("GET /v3/certificates", e.handleCertificates)
	e.mux.HandleFunc("GET /stats", e.handleStats)
	e.mux.HandleFunc("/", e.handleNotFound)
	return e
}

// ServeHTTP answers one request as WeChat would.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// WeChat puts a Request-ID on every answer, errors included; it is what
	// its support asks for.
	w.Header().Set("Request-ID", randomString(upperHex, 40))
	if r.URL.Path != "/stats" {
		e.mu.Lock()
		e.stats.Requests++
		e.mu.Unlock()
	}
	e.mux.ServeHTTP(w, r)
}

// answer is how the emulator replies: a signed 2xx or an unsigned error.
type answer struct {
	status int
	body   []byte       // the 2xx body, possibly empty
	err    *wechatError // set for error answers
	forge  bool         // sign over other bytes, as WeChat's probes do
}

// wechatError is WeChat's error body.
type wechatError struct {
	Code    string       `json:"code"`
	Message string       `json:"message"`
	Detail  *errorDetail `json:"detail,omitempty"`
}

// errorDetail names the offending field. It never carries the value, so an
// openid cannot leak into the worker's logs through it.
type errorDetail struct {
	Field    string `json:"field,omitempty"`
	Issue    string `json:"issue,omitempty"`
	Location string `json:"location,omitempty"`
}

func refusal(status int, code, message string) answer {
	return answer{status: status, err: &wechatError{Code: code, Message: message}}
}

// admit runs the checks every /v3/ request passes before its endpoint sees
// it: latency, rate limit and signature. It returns the body, or false after
// answering.
func (e *Emulator) admit(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	// The body is read before the wait: only then does net/http notice a
	// client that hangs up, and cancel r.Context().
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		e.reply(w, r, "", refusal(http.StatusBadRequest, "PARAM_ERROR", "请求体无法读取 (body unreadable or over 1 MiB)"))
		return nil, false
	}
	e.wait(r)
	if !e.allow() {
		e.reply(w, r, "", refusal(http.StatusTooManyRequests, "RATELIMIT_EXCEEDED", "请求频率超过上限，请稍后再试 (rate limit exceeded)"))
		return nil, false
	}
	if err := e.verifyRequest(r, body); err != nil {
		e.reply(w, r, "", refusal(http.StatusUnauthorized, "SIGN_ERROR", "错误的签名，验证失败: "+err.Error()))
		return nil, false
	}
	return body, true
}

// wait applies the configured latency. A client that gives up or a closing
// server cuts the wait short, but the request is still carried out: a
// timeout on the client's side does not undo work on WeChat's.
func (e *Emulator) wait(r *http.Request) {
	e.mu.Lock()
	d := e.latency
	e.mu.Unlock()
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	case <-e.quit:
	}
}

// allow applies the rate limit and counts the requests it admits.
func (e *Emulator) allow() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clock()
	if e.limiter != nil && !e.limiter.allow(now) {
		return false
	}
	if e.admitted.n == 0 {
		e.admitted.first = now
	}
	e.admitted.n++
	e.admitted.last = now
	return true
}

// reply writes a. A 2xx is signed with the key named by signSerial, or, when
// that is empty, the key the request's Wechatpay-Serial header asks for.
func (e *Emulator) reply(w http.ResponseWriter, r *http.Request, signSerial string, a answer) {
	h := w.Header()
	if a.err != nil {
		e.mu.Lock()
		e.stats.Refusals[a.err.Code]++
		e.mu.Unlock()
		body, _ := json.Marshal(a.err) // strings only: cannot fail
		h.Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		_, _ = w.Write(body)
		return
	}
	if signSerial == "" {
		signSerial = r.Header.Get("Wechatpay-Serial")
	}
	if err := e.signAnswer(h, signSerial, a.body, a.forge); err != nil {
		e.reply(w, r, "", refusal(http.StatusInternalServerError, "SYSTEM_ERROR", "系统错误 (sign answer: "+err.Error()+")"))
		return
	}
	if len(a.body) > 0 {
		h.Set("Content-Type", "application/json")
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

func (e *Emulator) handleNotFound(w http.ResponseWriter, r *http.Request) {
	e.reply(w, r, "", refusal(http.StatusNotFound, "NOT_FOUND", "请求的资源不存在 (no such endpoint)"))
}

// Server is an Emulator listening on a local port, like httptest.Server.
type Server struct {
	*Emulator
	// URL is the base URL, http://127.0.0.1:port, with no trailing slash.
	// Import URLs are URL + wechatpay.ImportPath(cardID).
	URL string
	// Keys are the identities the emulator accepts and signs with.
	Keys *Keys

	srv *httptest.Server
}

// NewServer starts an emulator on 127.0.0.1 on a free port. Close it when
// done, e.g. with t.Cleanup(srv.Close).
func NewServer(keys *Keys, opts ...Option) *Server {
	e := New(keys, opts...)
	ts := httptest.NewServer(e)
	return &Server{Emulator: e, URL: ts.URL, Keys: keys, srv: ts}
}

// Client returns an HTTP client for the server, for
// option.WithHTTPClient.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Close cuts short any latency being waited out, then shuts the server down
// and waits for requests in flight to finish.
func (s *Server) Close() {
	s.quitOnce.Do(func() { close(s.quit) })
	s.srv.Close()
}

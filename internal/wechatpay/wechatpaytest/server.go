package wechatpaytest

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// maxBodyBytes bounds a request body; an import body is a few hundred bytes.
const maxBodyBytes = 1 << 20

// importRoute is the import endpoint as a ServeMux pattern; clients build
// the path with wechatpay.ImportPath.
const importRoute = "/v3/marketing/membercard-open/cards/{card_id}/users/import"

// listRoute is the endpoint that lists the cards a member holds.
const listRoute = "/v3/marketing/membercard-open/user/cards"

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
	// platforms are WeChat's platform certificates, oldest first: Keys'
	// one, then those RotatePlatformCertificate made. The last is the one
	// WeChat signs API answers with.
	platforms []platformKey
	// downloads are the times GET /v3/certificates was answered
	// (CertificateDownloads).
	downloads []time.Time
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
		platforms:          []platformKey{{serial: keys.PlatformSerial, cert: keys.PlatformCert, key: keys.PlatformPrivateKey}},
	}
	if cfg.rateLimit > 0 {
		e.limiter = newWindowLimiter(cfg.rateLimit)
	}
	e.mux = http.NewServeMux()
	e.mux.HandleFunc("POST "+importRoute, e.handleImport)
	e.mux.HandleFunc("GET "+listRoute, e.handleList)
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

// answer is how the emulator replies. WeChat signs every answer to a
// request whose signature it verified, error answers included; the
// exceptions are marked.
type answer struct {
	status int
	body   []byte       // the 2xx body, possibly empty
	err    *wechatError // set for error answers
	forge  bool         // sign over other bytes, as WeChat's probes do
	// unsigned: the request's signature was not verified (or not yet
	// checked), so WeChat cannot sign: 401, 429, an unreadable body.
	unsigned bool
	// intercepted: not WeChat's answer but a stand-in's on the path
	// (ForgeRefusalNext, RedirectNext, …): no Wechatpay-* headers, no
	// Request-ID, counted apart from WeChat's refusals.
	intercepted bool
	// location is the Location header of an intercepted redirect.
	location string
	// certificates: signed as GET /v3/certificates is, with the platform
	// key the request names rather than the newest one.
	certificates bool
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

// unsignedRefusal is an error answer given before the request's signature
// was verified: WeChat does not sign what it could not trust.
func unsignedRefusal(status int, code, message string) answer {
	a := refusal(status, code, message)
	a.unsigned = true
	return a
}

// admit runs the checks every /v3/ request passes before its endpoint sees
// it: latency, rate limit and signature. It returns the body, or false after
// answering.
func (e *Emulator) admit(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	// The body is read before the wait: only then does net/http notice a
	// client that hangs up, and cancel r.Context().
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		e.reply(w, r, unsignedRefusal(http.StatusBadRequest, "PARAM_ERROR", "请求体无法读取 (body unreadable or over 1 MiB)"))
		return nil, false
	}
	e.wait(r)
	if !e.allow() {
		e.reply(w, r, unsignedRefusal(http.StatusTooManyRequests, "RATELIMIT_EXCEEDED", "请求频率超过上限，请稍后再试 (rate limit exceeded)"))
		return nil, false
	}
	if err := e.verifyRequest(r, body); err != nil {
		e.reply(w, r, unsignedRefusal(http.StatusUnauthorized, "SIGN_ERROR", "错误的签名，验证失败: "+err.Error()))
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

// reply writes a: signed with the key the request's Wechatpay-Serial header
// asks for (signingKey), unless a is unsigned or intercepted.
func (e *Emulator) reply(w http.ResponseWriter, r *http.Request, a answer) {
	h := w.Header()
	body := a.body
	if a.err != nil {
		body, _ = json.Marshal(a.err) // strings only: cannot fail
	}
	switch {
	case a.intercepted:
		// A stand-in on the path knows none of WeChat's headers.
		h.Del("Request-ID")
		if a.location != "" {
			h.Set("Location", a.location)
		}
	case !a.unsigned:
		if err := e.signAnswer(h, r.Header.Get("Wechatpay-Serial"), a.certificates, body, a.forge); err != nil {
			e.reply(w, r, unsignedRefusal(http.StatusInternalServerError, "SYSTEM_ERROR", "系统错误 (sign answer: "+err.Error()+")"))
			return
		}
	}
	e.mu.Lock()
	switch {
	case a.intercepted && a.location != "":
		e.stats.Redirects++
	case a.intercepted:
		e.stats.ForgedRefusals++
	case a.err != nil:
		e.stats.Refusals[a.err.Code]++
	}
	e.mu.Unlock()
	if len(body) > 0 {
		h.Set("Content-Type", "application/json")
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(body)
}

// handleNotFound answers a path WeChat does not serve. Under /v3/ the
// request is checked like any API call, so that a signed call meets a
// signed 404 and an unsigned one 401; elsewhere nothing is checked or
// signed.
func (e *Emulator) handleNotFound(w http.ResponseWriter, r *http.Request) {
	a := refusal(http.StatusNotFound, "NOT_FOUND", "请求的资源不存在 (no such endpoint)")
	if !strings.HasPrefix(r.URL.Path, "/v3/") {
		a.unsigned = true
	} else if _, ok := e.admit(w, r); !ok {
		return
	}
	e.reply(w, r, a)
}

// platformKey is one of WeChat's platform certificates and its key.
type platformKey struct {
	serial string
	cert   *x509.Certificate
	key    *rsa.PrivateKey
}

// Server is an Emulator listening on a local port, like httptest.Server.
type Server struct {
	*Emulator
	// URL is the base URL, http://127.0.0.1:port, with no trailing slash.
	// Import URLs are URL + wechatpay.ImportPath(cardID).
	URL string
	// Keys are the identities the emulator accepts and signs with. A
	// platform certificate made by RotatePlatformCertificate is not in
	// them: see PlatformCertificates.
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

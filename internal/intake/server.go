package intake

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/cardimport/cardimport/internal/httpserve"
)

// Server is the HTTP intake.
type Server struct {
	cfg     Config
	token   httpserve.Secret
	handler http.Handler
	// slots holds one token per batch being handled (MaxInFlight).
	slots chan struct{}
}

// New checks cfg and returns a Server. It refuses a server without a token
// whose Addr is not a loopback address (ErrNoToken).
func New(ctx context.Context, cfg Config) (*Server, error) {
	rawToken := cfg.Token
	cfg = cfg.withDefaults()
	if err := cfg.validate(ctx, rawToken); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, token: httpserve.NewSecret(cfg.Token), slots: make(chan struct{}, cfg.MaxInFlight)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/imports", s.imports)
	mux.HandleFunc("GET /v1/imports/{out_request_no}", s.member)
	mux.HandleFunc("GET /v1/runs/{id}", s.run)
	mux.HandleFunc("GET /v1/results", s.results)
	mux.HandleFunc("GET /healthz", s.health)
	guard := httpserve.BrowserGuard{
		ListenAddr:      cfg.Addr,
		AllowedHosts:    cfg.AllowedHosts,
		AllowedHostsVar: "INTAKE_ALLOWED_HOSTS",
		Deny: func(w http.ResponseWriter, status int, msg string) {
			writeJSON(w, status, errorResponse{Error: msg})
		},
	}
	s.handler = s.accessLog(guard.Handler(mux))
	return s, nil
}

// Handler returns the intake's routes, for tests and for embedding in
// another server.
func (s *Server) Handler() http.Handler { return s.handler }

// ListenAndServe listens on cfg.Addr and serves until ctx is cancelled.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is cancelled, then stops taking connections,
// lets in-flight requests finish within cfg.ShutdownTimeout and returns
// nil. A server without a token, or with one shorter than MinTokenBytes,
// refuses a listener that is not on a loopback address, whatever
// cfg.Addr said.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok {
		if err := checkToken(s.cfg.Token, tcp.IP.IsLoopback()); err != nil {
			_ = ln.Close()
			return err
		}
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		// A body of MaxBodyBytes at a slow 1 MB/s, with room to spare.
		ReadTimeout:  time.Minute,
		WriteTimeout: 2 * time.Minute,
		IdleTimeout:  2 * time.Minute,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log := s.cfg.Logger
	log.Info().Str("addr", ln.Addr().String()).Bool("token", s.cfg.Token != "").Msg("intake listening")

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info().Msg("intake shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info().Msg("intake stopped")
	return nil
}

// authorized checks the bearer token in constant time (httpserve.Secret),
// independent of the token's length too.
func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.Token == "" {
		return true
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return s.token.Matches(strings.TrimSpace(token))
}

// retryAfterRedis is the Retry-After of an answer 503 because Redis did
// not answer: long enough for a restart or a failover to get somewhere,
// short enough that a batch waits little once Redis is back.
const retryAfterRedis = "5"

// health answers 200 when Redis answers, 503 when not: the intake is of no
// use without its queue.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Producer.Ping(); err != nil {
		s.cfg.Logger.Warn().Err(err).Msg("health check: redis unreachable")
		w.Header().Set("Retry-After", retryAfterRedis)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "redis unreachable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// requestStats carries a request's counts from the handler to its access
// log line.
type requestStats struct {
	counted                       bool
	enqueued, duplicates, invalid int
}

type statsKey struct{}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// accessLog logs one line a request. It names the path, not the URL: a
// query string is the caller's to fill and may hold anything.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		stats := &requestStats{}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), statsKey{}, stats)))
		lvl := zerolog.InfoLevel
		if sw.status >= 500 {
			lvl = zerolog.ErrorLevel
		}
		ev := s.cfg.Logger.WithLevel(lvl).
			Str("method", r.Method).
			Str("path", r.URL.Path).
			Int("http_status", sw.status).
			Dur("duration", time.Since(start)).
			Str("remote", r.RemoteAddr)
		if stats.counted {
			ev = ev.Int("enqueued", stats.enqueued).Int("duplicates", stats.duplicates).Int("invalid", stats.invalid)
		}
		ev.Msg("http request")
	})
}

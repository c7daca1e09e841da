// Package httpserve runs the worker's side HTTP servers (the dashboard and
// the metrics endpoint) with the timeouts and the graceful shutdown every
// server facing a network needs, so each feature only supplies a handler.
// It also holds what every server of ours that a browser could reach
// shares: IsLoopback, which decides whether one may run without a login or
// a token, Secret, which checks the login or token in constant time, and
// BrowserGuard, which keeps web pages from driving it.
package httpserve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// Timeouts of every side server. asynqmon's task lists read Redis, so a
// write may take a while on a large queue; a slow or idle client must not
// hold a connection for ever.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 2 * time.Minute
	// ShutdownTimeout is how long requests in flight get to finish when the
	// server stops.
	ShutdownTimeout = 5 * time.Second
)

// Server is one running side server.
type Server struct {
	name string
	srv  *http.Server
	ln   net.Listener
	log  zerolog.Logger
	done chan struct{}
}

// Start listens on addr (HOST:PORT; port 0 picks a free one) and serves h
// in the background. name ("dashboard", "metrics") labels its log lines. An
// address that cannot be bound is an error naming flag.
func Start(name, flag, addr string, h http.Handler, log zerolog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	s := &Server{
		name: name,
		ln:   ln,
		log:  log.With().Str("server", name).Logger(),
		done: make(chan struct{}),
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
		},
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Msg("http server failed")
		}
	}()
	s.log.Info().Str("addr", s.Addr()).Msg("http server listening")
	return s, nil
}

// Addr is the address the server listens on, with the port it got.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown stops accepting connections and lets requests in flight finish
// for ShutdownTimeout, then closes what is left.
func (s *Server) Shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
	<-s.done
	s.log.Info().Msg("http server stopped")
}

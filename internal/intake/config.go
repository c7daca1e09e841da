// Package intake is the HTTP intake of the import queue, for registration
// systems that are not written in Go: POST /v1/imports takes a batch of
// members as a JSON array or as JSON lines, enqueues the valid ones through
// tasks.Producer — the validation and duplicate rules of `enqueue file` —
// and answers how many were enqueued, how many were duplicates and which
// were invalid and why.
//
// Requests carry `Authorization: Bearer <token>`. A server without a token
// may only listen on a loopback address, where nothing but the host itself
// can reach it, and one on another address needs a token of at least
// MinTokenBytes. Whatever its address, the intake takes members only as
// JSON and refuses requests a web page in a browser could make
// (httpserve.BrowserGuard): a page of another site, or one whose name was
// rebound to this host, cannot enqueue members. Access logs name method, path, status, duration, remote
// address and counts, never a body, an openid or a token.
package intake

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/internal/httpserve"
	"github.com/cardimport/cardimport/tasks"
)

// Defaults of Config.
const (
	// DefaultAddr listens on the loopback interface only.
	DefaultAddr = "127.0.0.1:8080"
	// DefaultMaxBodyBytes bounds a request body: 16 MiB holds some 100,000
	// members of ~150 bytes, more than MaxMembers allows, so the member
	// count is the limit a normal batch meets first.
	DefaultMaxBodyBytes = 16 << 20
	// DefaultMaxMembers bounds the members of one request, so one request
	// holds Redis for seconds, not minutes, and its answer stays small.
	DefaultMaxMembers = 10_000
	// DefaultMaxInFlight bounds the batches handled at once. Each holds
	// its body and decoded members in memory (up to MaxBodyBytes and
	// then some), so the intake's memory is bounded by about
	// DefaultMaxInFlight × 3 × MaxBodyBytes whatever its callers do; a
	// batch over the bound is answered 503 with Retry-After. Four keep
	// Redis busy: each batch already enqueues many members at once.
	DefaultMaxInFlight = 4
	// DefaultShutdownTimeout is how long in-flight requests get to finish
	// once the server is asked to stop.
	DefaultShutdownTimeout = 10 * time.Second
)

// Config configures a Server.
type Config struct {
	// Addr is the host:port to listen on. Defaults to DefaultAddr.
	Addr string
	// Token is the bearer token every request to /v1/imports must carry
	// (INTAKE_TOKEN). White space around it is ignored, as it is around the
	// token a request carries. It may be empty only when the server listens
	// on a loopback address, then requests need no token; elsewhere it must
	// be at least MinTokenBytes long.
	Token string
	// AllowedHosts are the host names, besides Addr's host, loopback and
	// IP addresses, that requests may name in their Host header
	// (INTAKE_ALLOWED_HOSTS): the name callers use behind a proxy.
	// Defaults to none.
	AllowedHosts []string
	// MaxBodyBytes bounds a request body; a larger one is refused with 413.
	// Defaults to DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxMembers bounds the members of one request; more are refused with
	// 413. Defaults to DefaultMaxMembers.
	MaxMembers int
	// MaxInFlight bounds the requests to /v1/imports handled at once;
	// more are answered 503 with Retry-After. Defaults to
	// DefaultMaxInFlight.
	MaxInFlight int
	// ShutdownTimeout bounds how long Serve waits for in-flight requests
	// once its context is cancelled. Defaults to DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Producer enqueues the members. Required.
	Producer *tasks.Producer
	// Store is the queue's dead-letter store: through it the intake reads
	// a member's status, and its results store the runs and outcomes
	// (Store.Results). Required.
	Store *deadletter.Store
	// Logger receives the access log and the server's events. Defaults to
	// the zero Logger, which discards everything.
	Logger zerolog.Logger
}

func (c Config) withDefaults() Config {
	// Both sides of the comparison are trimmed: a token pasted with a
	// space or a newline into INTAKE_TOKEN must not lock every client out.
	c.Token = strings.TrimSpace(c.Token)
	c.Addr = cmp.Or(c.Addr, DefaultAddr)
	c.MaxBodyBytes = cmp.Or(c.MaxBodyBytes, DefaultMaxBodyBytes)
	c.MaxMembers = cmp.Or(c.MaxMembers, DefaultMaxMembers)
	c.MaxInFlight = cmp.Or(c.MaxInFlight, DefaultMaxInFlight)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, DefaultShutdownTimeout)
	return c
}

// MinTokenBytes is the shortest token an intake other hosts can reach
// accepts: 16 random bytes are beyond guessing, and `openssl rand -hex 32`
// gives 64 characters.
const MinTokenBytes = 16

// ErrNoToken is returned when a server without a token would listen on an
// address other hosts can reach.
var ErrNoToken = errors.New("INTAKE_TOKEN: not set; without a token the intake only listens on a loopback address (127.0.0.1, ::1, localhost)")

// ErrShortToken is returned when a server whose token is shorter than
// MinTokenBytes would listen on an address other hosts can reach.
var ErrShortToken = fmt.Errorf("INTAKE_TOKEN: shorter than %d bytes; on an address other hosts can reach, use a long random token (e.g. openssl rand -hex 32)", MinTokenBytes)

// errBlankToken is returned for a token of white space only, which would
// otherwise leave the intake without one.
var errBlankToken = errors.New("INTAKE_TOKEN: holds only white space")

// checkToken says what is wrong with token for a server reachable from
// other hosts (loopback false) or from this host only.
func checkToken(token string, loopback bool) error {
	switch {
	case loopback:
		return nil
	case token == "":
		return ErrNoToken
	case len(token) < MinTokenBytes:
		return ErrShortToken
	}
	return nil
}

func (c Config) validate(ctx context.Context, rawToken string) error {
	switch {
	case c.Producer == nil:
		return errors.New("producer: required")
	case c.Store == nil:
		return errors.New("store: required")
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("max body bytes: must be positive, got %d", c.MaxBodyBytes)
	case c.MaxMembers < 0:
		return fmt.Errorf("max members: must be positive, got %d", c.MaxMembers)
	case c.MaxInFlight < 0:
		return fmt.Errorf("max in flight: must be positive, got %d", c.MaxInFlight)
	case c.ShutdownTimeout < 0:
		return fmt.Errorf("shutdown timeout: must not be negative, got %s", c.ShutdownTimeout)
	}
	if c.Token == "" && rawToken != "" {
		return errBlankToken
	}
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("addr: %w", err)
	}
	if c.Token != "" && len(c.Token) >= MinTokenBytes {
		return nil // long enough anywhere; spare the name lookup
	}
	return checkToken(c.Token, httpserve.IsLoopback(host))
}

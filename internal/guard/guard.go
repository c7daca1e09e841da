// Package guard stands between the worker fleet and WeChat Pay. It wraps
// the handler's Importer with two things every worker on the same Redis
// shares:
//
//   - a rate limit (go-redis/redis_rate, GCRA) of WECHATPAY_RATE_LIMIT
//     calls a second for the whole fleet, which a 429 from WeChat lowers
//     for a few seconds (multiplicative decrease, additive recovery);
//   - a circuit breaker that opens on a fault every call would meet (401
//     SIGN_ERROR at once, or a run of 5xx answers and timeouts), lets one
//     probe call through per probe interval while open, and closes when a
//     probe gets an answer that proves WeChat verifies our signature again.
//
// A call the guard holds back never reaches WeChat and comes back as a
// importer.DeferredError, which does not spend the task's retry budget: a
// systemic fault leaves the queue waiting instead of emptying it into the
// dead letters. The state lives in Redis under keys named after the queue
// (one queue per merchant), so every worker sees it and operators can read
// it (ReadState, the prometheus Collector).
package guard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/cardimport/cardimport/internal/importer"
	"github.com/cardimport/cardimport/internal/wechatpay"
)

// Defaults of Config.
const (
	// DefaultFailureThreshold: ten 5xx answers or timeouts in a row, with
	// no good answer between them, is an outage rather than bad luck: with
	// one call in ten failing at random it happens once in ten billion.
	DefaultFailureThreshold = 10
	// DefaultProbeInterval spaces the calls made while the circuit is open:
	// one every five seconds tells a recovery quickly and costs WeChat
	// nothing.
	DefaultProbeInterval = 5 * time.Second
	// DefaultUnverifiedThreshold: five answers in a row that do not verify,
	// with no verified answer between them, is a key configured wrong (or a
	// proxy rewriting answers), not WeChat's occasional probe.
	DefaultUnverifiedThreshold = 5
	// DefaultMaxWait is how long a task waits in place for the circuit or
	// the rate limit before it is handed back to the queue. Waiting in
	// place keeps a queue of many thousands from cycling through Redis
	// while the circuit is open; ten seconds keeps a SIGTERM prompt.
	DefaultMaxWait = 10 * time.Second
)

// callReserve is the part of a task's deadline kept for the call itself:
// a failed dial to the production host, a whole call to the backup host,
// and a margin (importer.CallReserve). Reserving only one HTTP timeout let a
// call that failed over run past the attempt's deadline.
const callReserve = importer.CallReserve

// maxInPlace is how many times one task tries again at once after a 429,
// taking a new token each time, before it goes back to the queue.
const maxInPlace = 3

// Config configures a Guard.
type Config struct {
	// Redis holds the shared state. Required.
	Redis redis.UniversalClient
	// Queue names the shared state: workers of the same queue share one
	// rate limit and one circuit. Required.
	Queue string
	// Rate is the fleet's calls a second to WeChat. Required, positive.
	Rate float64
	// FailureThreshold is how many 5xx answers or timeouts in a row open
	// the circuit. Defaults to DefaultFailureThreshold.
	FailureThreshold int
	// UnverifiedThreshold is how many answers in a row that do not verify
	// open the circuit. Defaults to DefaultUnverifiedThreshold.
	UnverifiedThreshold int
	// ProbeInterval is how often one call goes through while the circuit
	// is open. Defaults to DefaultProbeInterval.
	ProbeInterval time.Duration
	// MaxWait is how long a task waits in place for room. Defaults to
	// DefaultMaxWait.
	MaxWait time.Duration
	// Logger receives the circuit's state changes and slowdowns. Defaults
	// to a logger that discards everything.
	Logger *zerolog.Logger
}

func (c Config) withDefaults() Config {
	c.FailureThreshold = cmp.Or(c.FailureThreshold, DefaultFailureThreshold)
	c.UnverifiedThreshold = cmp.Or(c.UnverifiedThreshold, DefaultUnverifiedThreshold)
	c.ProbeInterval = cmp.Or(c.ProbeInterval, DefaultProbeInterval)
	c.MaxWait = cmp.Or(c.MaxWait, DefaultMaxWait)
	if c.Logger == nil {
		nop := zerolog.Nop()
		c.Logger = &nop
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.Redis == nil {
		errs = append(errs, errors.New("guard: Redis is required"))
	}
	if c.Queue == "" {
		errs = append(errs, errors.New("guard: Queue is required"))
	}
	if !(c.Rate > 0) {
		errs = append(errs, fmt.Errorf("guard: Rate must be positive, got %v", c.Rate))
	}
	if c.FailureThreshold < 1 {
		errs = append(errs, fmt.Errorf("guard: FailureThreshold must be at least 1, got %d", c.FailureThreshold))
	}
	if c.UnverifiedThreshold < 1 {
		errs = append(errs, fmt.Errorf("guard: UnverifiedThreshold must be at least 1, got %d", c.UnverifiedThreshold))
	}
	if c.ProbeInterval <= 0 {
		errs = append(errs, fmt.Errorf("guard: ProbeInterval must be positive, got %s", c.ProbeInterval))
	}
	if c.MaxWait <= 0 {
		errs = append(errs, fmt.Errorf("guard: MaxWait must be positive, got %s", c.MaxWait))
	}
	return errors.Join(errs...)
}

// Guard wraps an Importer with the shared rate limit and circuit breaker.
type Guard struct {
	next    importer.Importer
	limiter *limiter
	breaker *breaker
	maxWait time.Duration
	probe   time.Duration
	log     zerolog.Logger
	stop    chan struct{}
	once    sync.Once
}

// New returns a Guard in front of next, or an error naming what cfg lacks.
func New(next importer.Importer, cfg Config) (*Guard, error) {
	if next == nil {
		return nil, errors.New("guard: importer is required")
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger.With().Str("queue", cfg.Queue).Logger()
	k := newKeys(cfg.Queue)
	stop := make(chan struct{})
	return &Guard{
		next:    next,
		stop:    stop,
		limiter: newLimiter(cfg.Redis, k, cfg.Rate, log, stop),
		breaker: newBreaker(cfg.Redis, k, thresholds{outage: cfg.FailureThreshold, unverified: cfg.UnverifiedThreshold}, cfg.ProbeInterval, log, stop),
		maxWait: cfg.MaxWait,
		probe:   cfg.ProbeInterval,
		log:     log,
	}, nil
}

// Import implements importer.Importer: it waits for the circuit and for a
// token of the shared rate, calls WeChat, and tells the breaker and the
// limiter what WeChat answered. A 429 is tried again here, under the same
// out_request_no, with a new token.
func (g *Guard) Import(ctx context.Context, req wechatpay.ImportRequest) (wechatpay.ImportResult, error) {
	return through(ctx, g, req, g.next.Import)
}

// ListCards implements importer.Importer: the list of a member's cards, asked
// to confirm an already-member, goes through the same rate limit and
// circuit as an import.
func (g *Guard) ListCards(ctx context.Context, req wechatpay.ListCardsRequest) (wechatpay.CardPage, error) {
	return through(ctx, g, req, g.next.ListCards)
}

// through makes the call do(ctx, req) through g.call and returns its answer.
func through[Req, Res any](ctx context.Context, g *Guard, req Req, do func(context.Context, Req) (Res, error)) (Res, error) {
	var res Res
	err := g.call(ctx, func(ctx context.Context) (err error) {
		res, err = do(ctx, req)
		return err
	})
	return res, err
}

// call makes one call to WeChat when the circuit and the shared rate let
// it, and records what WeChat answered.
func (g *Guard) call(ctx context.Context, do func(context.Context) error) error {
	until := g.waitUntil(ctx)
	for attempt := 1; ; attempt++ {
		probe, err := g.breaker.admit(ctx, until)
		if err != nil {
			return err
		}
		if err := g.limiter.wait(ctx, until); err != nil {
			if probe {
				g.breaker.handOver(context.WithoutCancel(ctx))
			}
			return err
		}
		err = do(ctx)
		if g.breaker.record(ctx, err, probe) {
			// The fault is everyone's: the task comes back with the
			// probes, without spending a retry.
			return &importer.DeferredError{Reason: importer.DeferCircuitOpen, RetryAfter: g.probe, Err: err}
		}
		if err != nil && wechatpay.KindOf(err) == wechatpay.KindRateLimited {
			g.limiter.slowDown(ctx)
			if attempt < maxInPlace && time.Now().Before(until) {
				continue
			}
		}
		return err
	}
}

// Stop ends every wait at once and makes later calls return a
// DeferredError without waiting, so that a worker shutting down hands its
// waiting tasks back to the queue at once instead of holding SIGTERM up.
func (g *Guard) Stop() { g.once.Do(func() { close(g.stop) }) }

// waitUntil is when a task stops waiting for room and goes back to the
// queue: after MaxWait, and early enough to leave the call its timeout
// before the task's deadline.
func (g *Guard) waitUntil(ctx context.Context) time.Time {
	until := time.Now().Add(g.maxWait)
	if d, ok := ctx.Deadline(); ok && d.Add(-callReserve).Before(until) {
		until = d.Add(-callReserve)
	}
	return until
}

// sleep waits d, and reports whether it did: false when ctx ended or the
// guard was stopped first.
func sleep(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-t.C:
		return ctx.Err() == nil
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	}
}

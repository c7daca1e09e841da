package wechatpaytest

import "time"

// config is what Options set when an Emulator is created.
type config struct {
	clock              func() time.Time
	firstAttemptFaults float64
	rateLimit          int
	latency            time.Duration
}

// Option configures an Emulator when it is created.
type Option func(*config)

// WithClock sets the emulator's clock: it checks request timestamps, stamps
// and signs answers, and counts the rate limit by it. A clock six minutes
// off tests what a skewed host meets. Defaults to time.Now.
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.clock = now
		}
	}
}

// WithFirstAttemptFaults makes roughly share (0 to 1) of all out_request_nos
// meet 500 SYSTEM_ERROR on their first attempt, before anything is
// imported; their retries succeed. Which numbers fail is decided by hashing
// the out_request_no, so a run is reproducible. Defaults to 0.
func WithFirstAttemptFaults(share float64) Option {
	return func(c *config) { c.firstAttemptFaults = share }
}

// WithRateLimit answers 429 RATELIMIT_EXCEEDED to requests beyond perSecond
// in any one-second window, as WeChat's gateway does (sibling import APIs
// allow 5 to 10 a second per merchant). Refused requests do not count
// toward the limit. Defaults to 0, no limit.
func WithRateLimit(perSecond int) Option {
	return func(c *config) { c.rateLimit = perSecond }
}

// WithLatency delays every answer to /v3/… by d. Defaults to 0; see also
// Emulator.SetLatency.
func WithLatency(d time.Duration) Option {
	return func(c *config) { c.latency = d }
}

package guard

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// State is what the guard of a queue shows operators.
type State struct {
	// Open is set while the circuit is open: workers call WeChat only to
	// probe, and tasks wait without spending retries.
	Open bool `json:"open"`
	// Cause says why it opened, Hint what to check. Empty while closed.
	Cause string `json:"cause,omitempty"`
	Hint  string `json:"hint,omitempty"`
	// Since is when it opened. Zero while closed.
	Since time.Time `json:"since,omitzero"`
	// Failures counts 5xx answers and timeouts since the last good answer.
	Failures int `json:"failures"`
	// Unverified counts answers whose signature did not verify since the
	// last verified answer.
	Unverified int `json:"unverified"`
	// NextProbe is how long until the next probe may go; 0 when one may go
	// now or the circuit is closed.
	NextProbe time.Duration `json:"next_probe"`
	// RateFactor is the share of WECHATPAY_RATE_LIMIT in force: below 1
	// for a few seconds after WeChat answered 429.
	RateFactor float64 `json:"rate_factor"`
}

// ReadState returns the guard's state for queue. It needs no Guard, so
// the enqueue command and the metrics endpoint can read it.
func ReadState(ctx context.Context, rdb redis.UniversalClient, queue string) (State, error) {
	k := newKeys(queue)
	h, err := rdb.HGetAll(ctx, k.circuit).Result()
	if err != nil {
		return State{}, err
	}
	s := State{Open: h["state"] == stateOpen}
	s.Failures, _ = strconv.Atoi(h["failures"])
	s.Unverified, _ = strconv.Atoi(h["unverified"])
	if s.Open {
		s.Cause, s.Hint = h["cause"], h["hint"]
		if ms, err := strconv.ParseInt(h["since"], 10, 64); err == nil {
			s.Since = time.UnixMilli(ms)
		}
		if ms, err := strconv.ParseInt(h["next_probe"], 10, 64); err == nil {
			s.NextProbe = max(time.Until(time.UnixMilli(ms)), 0)
		}
	}
	if s.RateFactor, err = readFactor(ctx, rdb, k); err != nil {
		return State{}, err
	}
	return s, nil
}

// DeleteState removes every key the guard keeps for queue: the circuit,
// the slowdown and the rate limiter's. Closing a circuit by hand this way is
// rarely needed: it closes by itself when a probe succeeds.
func DeleteState(ctx context.Context, rdb redis.UniversalClient, queue string) error {
	k := newKeys(queue)
	return errors.Join(
		rdb.Del(ctx, k.circuit, k.slowdown).Err(),
		redis_rate.NewLimiter(rdb).Reset(ctx, k.rate),
	)
}

package guard

import (
	"context"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/cardimport/cardimport/internal/importer"
)

// The slowdown after a 429: multiply the rate by slowdownFactor, at most
// once per slowdownHold (a 429 answers calls sent before the last cut, and
// those must not cut again), never below slowdownFloor of the configured
// rate, and win back slowdownRecovery of it each second. From one cut the
// fleet is back at full rate in two seconds; a limit really lower than
// WECHATPAY_RATE_LIMIT keeps cutting it, and the warning says so.
const (
	slowdownFactor   = 0.9
	slowdownFloor    = 0.1
	slowdownRecovery = 0.05
	slowdownHold     = time.Second
)

// factorRefresh is how long a process trusts the slowdown factor it read.
const factorRefresh = 200 * time.Millisecond

// rateScale turns a decimal rate into redis_rate's integer Rate per Period
// (Rate/Period is all GCRA uses), so 2.5 a second is 2500 per 1000 s.
const rateScale = 1000

// limiter is the fleet's shared rate limit: GCRA in Redis (redis_rate) with
// a burst of one, so calls leave evenly spaced and no second holds more
// than the limit.
type limiter struct {
	rl    *redis_rate.Limiter
	rdb   redis.UniversalClient
	keys  keys
	rate  float64
	log   zerolog.Logger
	turn  chan struct{} // one waiter per process asks Redis at a time
	stop  <-chan struct{}
	cache struct {
		sync.Mutex
		factor float64
		at     time.Time
	}
}

func newLimiter(rdb redis.UniversalClient, k keys, rate float64, log zerolog.Logger, stop <-chan struct{}) *limiter {
	return &limiter{rl: redis_rate.NewLimiter(rdb), rdb: rdb, keys: k, rate: rate, log: log, turn: make(chan struct{}, 1), stop: stop}
}

// limitFor is redis_rate's Limit for rate calls a second. GCRA with a
// burst of one spaces calls exactly, so no second ever holds more than the
// limit, but every call loses however late its waiter woke (a timer, a
// round trip to Redis; about a millisecond on a busy host): 4% of the
// allowance at 40 a second, 10% at 100. A burst of two lets a late waiter
// make up for it; calls within any second then number up to rate+1, so the
// rate is lowered by one for the burst, and by jitterMargin more for the
// calls that a busy host's scheduling (or the network) delays on their
// way to WeChat while the next ones are not. That costs about 4% from 45
// a second up, less than the lateness.
func limitFor(rate float64) redis_rate.Limit {
	burst := 1
	if rate >= burstFrom {
		burst, rate = 2, (rate-1)*(1-jitterMargin)
	}
	return redis_rate.Limit{Rate: max(1, int(math.Round(rate*rateScale))), Period: rateScale * time.Second, Burst: burst}
}

// burstFrom is the rate from which limitFor uses a burst of two.
const burstFrom = 45

// jitterMargin is the share of the rate limitFor keeps unused with a burst
// of two, measured by BenchmarkSharedRateLimit on a loaded two-core host:
// 2% still met a few 429s at 100 a second.
const jitterMargin = 0.03

// wait returns when the call may go, or a DeferredError when there is no
// room for it before until. Waiters of one process queue for their turn to
// ask Redis, so that a process asks about once per token rather than every
// waiting task asking at every turn.
func (l *limiter) wait(ctx context.Context, until time.Time) error {
	if !time.Now().Before(until) {
		// No room left at all: defer at once. Left to the select below, an
		// already-fired timer would race a free turn at random, and the
		// task would sometimes call with no time left for the call.
		return &importer.DeferredError{Reason: importer.DeferRateLimit, RetryAfter: time.Second}
	}
	timeout := time.NewTimer(time.Until(until))
	defer timeout.Stop()
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-l.stop:
		return &importer.DeferredError{Reason: importer.DeferRateLimit, RetryAfter: time.Second}
	case <-timeout.C:
		return &importer.DeferredError{Reason: importer.DeferRateLimit, RetryAfter: time.Second}
	}
	defer func() { <-l.turn }()
	for {
		res, err := l.rl.Allow(ctx, l.keys.rate, limitFor(l.rate*l.factor(ctx)))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &importer.DeferredError{Reason: importer.DeferRedis, RetryAfter: time.Second, Err: err}
		}
		if res.Allowed > 0 {
			return nil
		}
		if time.Now().Add(res.RetryAfter).After(until) {
			return &importer.DeferredError{Reason: importer.DeferRateLimit, RetryAfter: time.Second}
		}
		if !sleep(ctx, l.stop, res.RetryAfter) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &importer.DeferredError{Reason: importer.DeferRateLimit, RetryAfter: time.Second}
		}
	}
}

// factor is the share of the configured rate in force: 1 unless a 429 cut
// it lately. Read from Redis at most every factorRefresh.
func (l *limiter) factor(ctx context.Context) float64 {
	l.cache.Lock()
	defer l.cache.Unlock()
	if time.Since(l.cache.at) < factorRefresh {
		return l.cache.factor
	}
	f, err := readFactor(ctx, l.rdb, l.keys)
	if err != nil {
		// Keep the last factor: a Redis blip must not lift a slowdown.
		return max(l.cache.factor, slowdownFloor)
	}
	l.cache.factor, l.cache.at = f, time.Now()
	return f
}

// slowDown cuts the fleet's rate after a 429 and logs the cut, once for
// the fleet.
func (l *limiter) slowDown(ctx context.Context) {
	res, err := slowDownScript.Run(ctx, l.rdb, []string{l.keys.slowdown},
		slowdownFactor, slowdownFloor, slowdownRecovery, slowdownHold.Milliseconds()).Slice()
	if err != nil || len(res) != 2 {
		l.log.Warn().Err(err).Msg("rate slowdown not recorded")
		return
	}
	f, _ := strconv.ParseFloat(toString(res[1]), 64)
	l.cache.Lock()
	l.cache.factor, l.cache.at = f, time.Now()
	l.cache.Unlock()
	if cut, _ := res[0].(int64); cut == 1 {
		l.log.Warn().Float64("rate_limit", l.rate).Float64("effective_rate", l.rate*f).
			Str("hint", "wechat pay answered 429; if this repeats, WECHATPAY_RATE_LIMIT is above what WeChat allows this merchant").
			Msg("wechat pay rate limit hit, slowing down")
	}
}

// readFactor returns the slowdown factor in force, 1 when none is.
func readFactor(ctx context.Context, rdb redis.UniversalClient, k keys) (float64, error) {
	s, err := factorScript.Run(ctx, rdb, []string{k.slowdown}, slowdownRecovery).Text()
	if err != nil {
		return 1, err
	}
	return strconv.ParseFloat(s, 64)
}

func toString(v any) string {
	s, _ := v.(string)
	return s
}

// nowMillis is the Lua that reads Redis's clock, the one every worker
// shares, in milliseconds.
const nowMillis = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// factorLua computes the factor in force from the hash at KEYS[1]: the cut
// factor plus what has been won back since, at ARGV recovery a second.
const factorLua = `local function current(now, recovery)
  local f = tonumber(redis.call('HGET', KEYS[1], 'factor') or '1')
  local since = tonumber(redis.call('HGET', KEYS[1], 'since') or '0')
  return math.min(1, f + (now - since) / 1000 * recovery), since
end
`

var factorScript = redis.NewScript(nowMillis + factorLua + `
local f = current(now, tonumber(ARGV[1]))
return tostring(f)
`)

// slowDownScript: ARGV factor, floor, recovery, hold ms. Returns {cut, f}.
var slowDownScript = redis.NewScript(nowMillis + factorLua + `
local f, since = current(now, tonumber(ARGV[3]))
if now - since < tonumber(ARGV[4]) then
  return {0, tostring(f)}
end
local nf = math.max(tonumber(ARGV[2]), f * tonumber(ARGV[1]))
redis.call('HSET', KEYS[1], 'factor', tostring(nf), 'since', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((1 - nf) / tonumber(ARGV[3]) * 1000) + 1000)
return {1, tostring(nf)}
`)

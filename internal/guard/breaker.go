package guard

import (
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

// pollInterval is how often a task waiting on an open circuit looks again.
const pollInterval = 500 * time.Millisecond

// recordTimeout bounds the recording of an answer in Redis.
const recordTimeout = 5 * time.Second

// viewFresh is how long a process trusts a closed circuit with no failure
// counted, as Redis last showed it, without asking again. While the view
// is clean and fresh a call costs the breaker no round trip to Redis,
// neither before it nor after a good answer: at hundreds of imports a
// second that is two Redis calls an import fewer. The price, for this
// process only: calls made up to viewFresh after another worker opened the
// circuit (each comes back deferred, like any failure while open), and
// good answers in that time that do not reset a run of failures another
// worker counted. Any failure this process meets makes its view dirty at
// once, so from then on every call asks Redis, as before.
const viewFresh = 100 * time.Millisecond

// Causes and hints the breaker opens with; operators read them in the log,
// in ReadState and on `enqueue circuit`.
const (
	causeSignError  = "wechat pay rejects our signature (401 SIGN_ERROR)"
	causeOutage     = "wechat pay failing: %d 5xx answers or timeouts in a row (last: %s)"
	causeUnverified = "wechat pay's answers do not verify: %d in a row (last: %s)"
	hintOutage      = "wechat pay is down or unreachable from this host; imports resume by themselves once a probe call succeeds; check this host's network egress to WECHATPAY_BASE_URL"
)

// breaker is the fleet's circuit breaker, kept in a Redis hash. Closed (no
// hash, or one holding only a count of failures): calls go through. Open:
// calls wait; the first to ask once the probe time has come makes one call
// and sets the next probe time; an answer that shows WeChat verifies our
// signature again closes it. Every decision is one script run on Redis's
// clock, so exactly one worker of the fleet makes, and logs, each change.
type breaker struct {
	rdb       redis.UniversalClient
	keys      keys
	threshold thresholds
	probe     time.Duration
	log       zerolog.Logger
	stop      <-chan struct{}
	view      view
}

// view is what this process last saw of the circuit: clean is true when
// Redis showed no state at all (closed, no failure counted) at the time
// at, and this process has met no failure since. dirtied counts the times
// it was made dirty, so that a clean answer from Redis does not undo a
// failure this process recorded while that answer was on its way.
type view struct {
	sync.Mutex
	clean   bool
	at      time.Time
	dirtied uint64
}

// trusted reports whether the view is clean and fresh: a call may go, and
// a good answer need not reset anything.
func (v *view) trusted() bool {
	v.Lock()
	defer v.Unlock()
	return v.clean && time.Since(v.at) < viewFresh
}

// mark is taken before asking Redis; cleanAsOf(mark) then makes the view
// clean unless it was made dirty in between.
func (v *view) mark() uint64 {
	v.Lock()
	defer v.Unlock()
	return v.dirtied
}

func (v *view) cleanAsOf(mark uint64) {
	v.Lock()
	if v.dirtied == mark {
		v.clean, v.at = true, time.Now()
	}
	v.Unlock()
}

// dirty makes the next call ask Redis.
func (v *view) dirty() {
	v.Lock()
	v.clean = false
	v.dirtied++
	v.Unlock()
}

// thresholds are the runs of failures that open the circuit, each counted
// on its own: a run of outages says nothing of our key, and the reverse.
type thresholds struct {
	outage     int
	unverified int
}

func newBreaker(rdb redis.UniversalClient, k keys, threshold thresholds, probe time.Duration, log zerolog.Logger, stop <-chan struct{}) *breaker {
	return &breaker{rdb: rdb, keys: k, threshold: threshold, probe: probe, log: log, stop: stop}
}

// admit returns when a call may go: at once while the circuit is closed;
// while it is open, when this call wins the next probe (probe is then set)
// or the circuit closes. Past until it returns a DeferredError.
func (b *breaker) admit(ctx context.Context, until time.Time) (probe bool, err error) {
	// A probe holds the next probe back for as long as its call may take,
	// so that probes go one at a time even when each waits for a timeout;
	// record then sets the next one an interval after it ended.
	lease := b.probe + callReserve
	if b.view.trusted() {
		return false, nil
	}
	for {
		mark := b.view.mark()
		verdict, err := admitScript.Run(ctx, b.rdb, []string{b.keys.circuit}, lease.Milliseconds()).Int()
		switch {
		case err == nil && verdict == admitClean:
			b.view.cleanAsOf(mark)
		case err == nil:
			b.view.dirty()
		}
		switch {
		case err == nil && (verdict == admitClosed || verdict == admitClean):
			return false, nil
		case err == nil && verdict == admitProbe:
			b.log.Info().Msg("circuit open, probing wechat pay")
			return true, nil
		case ctx.Err() != nil:
			return false, ctx.Err()
		case err != nil:
			return false, &importer.DeferredError{Reason: importer.DeferRedis, RetryAfter: time.Second, Err: err}
		}
		left := time.Until(until)
		deferred := &importer.DeferredError{Reason: importer.DeferCircuitOpen, RetryAfter: b.probe}
		if left <= 0 {
			return false, deferred
		}
		if !sleep(ctx, b.stop, min(pollInterval, left)) {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			return false, deferred
		}
		if !time.Now().Before(until) {
			// Out of time: winning the probe now would only hand it over,
			// as the limiter defers a call that comes after until.
			return false, deferred
		}
	}
}

// record tells the breaker what a call met, and reports whether the call
// failed as part of the fault the open circuit stands for (a rejected
// signature, an outage): such a failure is the fleet's, not the task's.
// probe says the call was the open circuit's probe.
func (b *breaker) record(ctx context.Context, err error, probe bool) (outage bool) {
	// The task's context may be ending; what WeChat answered still counts.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	var werr *wechatpay.Error
	errors.As(err, &werr)
	switch {
	case err == nil:
		b.succeed(ctx)
		return false
	case werr != nil && werr.Kind == wechatpay.KindPermanent:
		// WeChat verified our signature and judged the member in an
		// answer we verified: both keys work.
		b.succeed(ctx)
		return false
	}
	// Whatever else the call met, this process no longer trusts a clean
	// view: its next calls ask Redis. Once more when the failure is
	// recorded, so that no clean answer read meanwhile stands.
	b.view.dirty()
	defer b.view.dirty()
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		// Our own shutdown or deadline, not WeChat's answer.
	case werr == nil:
		return b.fail(ctx, 0, "", probe)
	case werr.Kind == wechatpay.KindSystemic:
		return b.open(ctx, werr, probe)
	case werr.Kind == wechatpay.KindTransient && (werr.StatusCode >= 500 || werr.StatusCode == 0):
		return b.fail(ctx, werr.StatusCode, werr.Code, probe)
	case werr.Kind == wechatpay.KindUnverified:
		return b.unverified(ctx, werr, probe)
	}
	// A 429, a 202, a redirect or our own cancellation says nothing
	// about the fault; a probe that met one hands over to the next.
	if probe {
		b.handOver(ctx)
	}
	return false
}

// handOver lets the next probe go an interval from now, after a probe that
// told nothing or was never sent.
func (b *breaker) handOver(ctx context.Context) {
	if err := rescheduleScript.Run(ctx, b.rdb, []string{b.keys.circuit}, b.probe.Milliseconds()).Err(); err != nil {
		b.log.Warn().Err(err).Msg("circuit state not recorded")
	}
}

// succeed closes the circuit and forgets failures; with a clean, fresh
// view there is nothing to close or forget.
func (b *breaker) succeed(ctx context.Context) {
	if b.view.trusted() {
		return
	}
	mark := b.view.mark()
	res, err := closeScript.Run(ctx, b.rdb, []string{b.keys.circuit}).Slice()
	if err != nil {
		b.log.Warn().Err(err).Msg("circuit state not recorded")
		return
	}
	b.view.cleanAsOf(mark)
	if closed, _ := res[0].(int64); closed == 1 {
		since := time.UnixMilli(parseInt(res[2]))
		b.log.Info().Str("cause", toString(res[1])).Dur("open_for", time.Since(since)).
			Msg("circuit closed, imports resume")
	}
}

// open opens the circuit at once: the fault is in our configuration.
func (b *breaker) open(ctx context.Context, werr *wechatpay.Error, probe bool) bool {
	return b.transition(ctx, counterFailures, 0, causeSignError, werr.Hint, werr.StatusCode, werr.Code, probe)
}

// unverified counts an answer that did not verify, and opens the circuit at
// its threshold: answers that stop verifying across members are a key
// configured wrong, and retrying each member would only burn its budget.
func (b *breaker) unverified(ctx context.Context, werr *wechatpay.Error, probe bool) bool {
	last := fmt.Sprintf("http %d", werr.StatusCode)
	return b.transition(ctx, counterUnverified, b.threshold.unverified,
		fmt.Sprintf(causeUnverified, b.threshold.unverified, last), wechatpay.HintUnverified, werr.StatusCode, werr.Code, probe)
}

// fail counts a 5xx or a timeout, opens the circuit at the threshold, and
// reports whether the circuit is open.
func (b *breaker) fail(ctx context.Context, status int, code string, probe bool) bool {
	last := "no answer"
	if status != 0 {
		last = fmt.Sprintf("http %d %s", status, code)
	}
	return b.transition(ctx, counterFailures, b.threshold.outage, fmt.Sprintf(causeOutage, b.threshold.outage, last), hintOutage, status, code, probe)
}

// Counters of the circuit's hash, one per run of failures that opens it.
const (
	counterFailures   = "failures"
	counterUnverified = "unverified"
)

// transition counts a failure in counter, opens the circuit when threshold
// is 0 or reached, logs the opening if this call made it, and reports
// whether the circuit is open.
func (b *breaker) transition(ctx context.Context, counter string, threshold int, cause, hint string, status int, code string, probe bool) bool {
	res, err := openScript.Run(ctx, b.rdb, []string{b.keys.circuit},
		cause, hint, b.probe.Milliseconds(), threshold, probe, counter).Slice()
	if err != nil || len(res) != 2 {
		b.log.Warn().Err(err).Msg("circuit state not recorded")
		return false
	}
	switch res[0].(int64) {
	case 1:
		b.log.Error().Str("cause", cause).Str("hint", hint).Int("http_status", status).Str("wechat_code", code).
			Dur("probe_interval", b.probe).
			Msg("circuit opened, imports wait without spending retries")
		return true
	case 2:
		msg := "call failed while circuit open"
		if probe {
			msg = "probe failed, circuit stays open"
		}
		b.log.Warn().Int("http_status", status).Str("wechat_code", code).Msg(msg)
		return true
	}
	return false
}

func parseInt(v any) int64 {
	n, _ := v.(int64)
	return n
}

const stateOpen = "open"

// Verdicts of admitScript.
const (
	admitClosed = 0
	admitProbe  = 1
	admitWait   = 2
	admitClean  = 3
)

// admitScript: KEYS circuit; ARGV probe lease ms. Returns admitClean (no
// state: closed, no failure counted), admitClosed (closed, failures
// counted), admitProbe (and holds the next probe back for the lease) or
// admitWait.
var admitScript = redis.NewScript(nowMillis + `
local st = redis.call('HMGET', KEYS[1], 'state', 'next_probe')
if st[1] ~= 'open' then
  if redis.call('EXISTS', KEYS[1]) == 0 then
    return 3
  end
  return 0
end
if now < tonumber(st[2] or '0') then
  return 2
end
redis.call('HSET', KEYS[1], 'next_probe', now + tonumber(ARGV[1]))
return 1
`)

// openScript: KEYS circuit; ARGV cause, hint, probe interval ms, threshold
// (0: open at once), 1 if the call was a probe, the counter field. Counts a
// failure in the counter, opens at the threshold, and sets the next probe
// one interval later (when opening, or after a failed probe). Returns {0
// closed / 1 opened now / 2 already open, failures}.
var openScript = redis.NewScript(nowMillis + `
local n = redis.call('HINCRBY', KEYS[1], ARGV[6], 1)
if redis.call('HGET', KEYS[1], 'state') == 'open' then
  if ARGV[5] == '1' then
    redis.call('HSET', KEYS[1], 'next_probe', now + tonumber(ARGV[3]))
  end
  return {2, n}
end
if tonumber(ARGV[4]) > 0 and n < tonumber(ARGV[4]) then
  return {0, n}
end
redis.call('HSET', KEYS[1], 'state', 'open', 'cause', ARGV[1], 'hint', ARGV[2], 'since', now,
  'next_probe', now + tonumber(ARGV[3]))
return {1, n}
`)

// rescheduleScript: KEYS circuit; ARGV probe interval ms. After a probe
// that told nothing, lets the next one go an interval later.
var rescheduleScript = redis.NewScript(nowMillis + `
if redis.call('HGET', KEYS[1], 'state') == 'open' then
  redis.call('HSET', KEYS[1], 'next_probe', now + tonumber(ARGV[1]))
end
return 0
`)

// closeScript: KEYS circuit. Deletes the circuit's hash (closed is the
// absence of state). Returns {closed, cause, since ms}.
var closeScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, '', 0}
end
local st = redis.call('HMGET', KEYS[1], 'state', 'cause', 'since')
redis.call('DEL', KEYS[1])
if st[1] == 'open' then
  return {1, st[2], tonumber(st[3])}
end
return {0, '', 0}
`)

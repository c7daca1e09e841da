package importer

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cardimport/cardimport/internal/wechatpay"
)

// Defaults of the retry backoff (RETRY_MIN_DELAY, RETRY_MAX_DELAY).
const (
	// DefaultRetryMinDelay: WeChat asks to retry a SYSTEM_ERROR "later with
	// the same parameters"; two seconds lets a blip pass without making a
	// member wait long.
	DefaultRetryMinDelay = 2 * time.Second
	// DefaultRetryMaxDelay caps the doubling so that, after an outage, every
	// task is tried again within ten minutes of WeChat's recovery.
	DefaultRetryMaxDelay = 10 * time.Minute
)

// Delays of the retries that do not spend the retry budget.
const (
	// rateLimitedDelay is short: WeChat's limit is per second, so the
	// allowance comes back almost at once.
	rateLimitedDelay = 1 * time.Second
	// systemicDelay spaces out calls that will fail the same way until an
	// operator fixes the key, the serial or the clock.
	systemicDelay = 30 * time.Second
)

// IsFailure tells asynq whether an error spends the task's retry budget. A
// rate limit, a systemic fault (every task fails the same way), a call held
// back by the circuit breaker or the shared rate limit (DeferredError) and a
// lease that expired because a worker died are not the task's fault:
// counting them would archive healthy members.
func IsFailure(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, asynq.ErrLeaseExpired) {
		return false
	}
	var deferred *DeferredError
	if errors.As(err, &deferred) {
		return false
	}
	var werr *wechatpay.Error
	if errors.As(err, &werr) {
		switch werr.Kind {
		case wechatpay.KindRateLimited, wechatpay.KindSystemic:
			return false
		}
	}
	return true
}

// RetryDelay returns asynq's RetryDelayFunc: exponential backoff from min
// doubling up to max, with "equal jitter" (half fixed, half random) so that
// tasks failed together by one outage do not all come back in the same
// second, while no delay falls below min. Rate limits and systemic faults
// get their own short, fixed-with-jitter delays.
func RetryDelay(minDelay, maxDelay time.Duration) asynq.RetryDelayFunc {
	return func(n int, err error, _ *asynq.Task) time.Duration {
		var deferred *DeferredError
		if errors.As(err, &deferred) && deferred.RetryAfter > 0 {
			return jitter(deferred.RetryAfter)
		}
		var werr *wechatpay.Error
		if errors.As(err, &werr) {
			switch werr.Kind {
			case wechatpay.KindRateLimited:
				return jitter(rateLimitedDelay)
			case wechatpay.KindSystemic:
				return jitter(systemicDelay)
			}
		}
		return backoff(n, minDelay, maxDelay)
	}
}

func backoff(n int, minDelay, maxDelay time.Duration) time.Duration {
	d := minDelay
	for i := 0; i < n && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	if d/2 >= minDelay {
		return jitter(d)
	}
	// Early retries jitter upwards, so that tasks failed together by one
	// blip do not all come back in the same second, and none before min.
	return min(d+rand.N(d/2+1), maxDelay)
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

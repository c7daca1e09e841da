package wechatpaytest

import "time"

// windowLimiter admits at most limit requests in any one-second window. It
// remembers the times of the last limit admitted requests: a new one is
// admitted when the oldest of them is a second old or more. Guarded by
// Emulator.mu.
type windowLimiter struct {
	limit  int
	times  []time.Time // ring of admitted requests' times
	oldest int         // index of the oldest once the ring is full
}

func newWindowLimiter(limit int) *windowLimiter {
	return &windowLimiter{limit: limit, times: make([]time.Time, 0, limit)}
}

func (l *windowLimiter) allow(now time.Time) bool {
	if len(l.times) < l.limit {
		l.times = append(l.times, now)
		return true
	}
	if now.Sub(l.times[l.oldest]) < time.Second {
		return false
	}
	l.times[l.oldest] = now
	l.oldest = (l.oldest + 1) % l.limit
	return true
}

package worker

import (
	"context"
	"time"
)

// When Redis goes away while a task is in flight, asynq cannot write the
// task's outcome (completed, or back to retry) and hands the write to its
// syncer; but in asynq v0.26 the syncer retries with a context that has
// already been cancelled, so the write never happens and the task stays
// active until asynq's lease recovery takes it back, 60 to 120 s later
// (hibiken/asynq#1051). The worker therefore holds a failed task's outcome
// while Redis does not answer, and returns it to asynq once Redis is back,
// so that asynq's first write can succeed. An import that succeeded while
// Redis was down is one of them: its result could not be written, so it
// is deferred (retried without spending its budget, and WeChat answers the
// retry under the same out_request_no with the first result).
const (
	// holdMax bounds the wait. A lease is extended every 5 s to 30 s
	// ahead; a write after the lease has run out is dropped by asynq, so
	// a longer hold would gain nothing.
	holdMax = 15 * time.Second
	// holdPoll is how often a held outcome asks whether Redis is back.
	holdPoll = 200 * time.Millisecond
)

// pinger is what holdWhileRedisDown needs of Redis: the dead-letter store.
type pinger interface {
	Ping(ctx context.Context) error
}

// holdWhileRedisDown returns at once when Redis answers; otherwise it
// waits until it does, for at most holdMax, never past ctx's deadline
// (less a second for asynq's own write), and not once ctx is cancelled
// (asynq gave up on the task) or stop is closed (the worker is stopping).
// It reports whether Redis answers.
func holdWhileRedisDown(ctx context.Context, rdb pinger, stop <-chan struct{}) bool {
	until := time.Now().Add(holdMax)
	if d, ok := ctx.Deadline(); ok && d.Add(-time.Second).Before(until) {
		until = d.Add(-time.Second)
	}
	// The ping itself must run whatever the task's context says: asynq's
	// ErrorHandler is called with a context that may be done already.
	pctx := context.WithoutCancel(ctx)
	for {
		attempt, cancel := context.WithTimeout(pctx, time.Second)
		err := rdb.Ping(attempt)
		cancel()
		if err == nil {
			return true
		}
		if time.Until(until) <= holdPoll || ctx.Err() != nil {
			return false
		}
		select {
		case <-time.After(holdPoll):
		case <-ctx.Done():
			return false
		case <-stop:
			return false
		}
	}
}

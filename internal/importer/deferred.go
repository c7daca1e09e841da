package importer

import (
	"fmt"
	"time"
)

// Reasons a DeferredError gives.
const (
	// DeferCircuitOpen: WeChat fails every call the same way (a key it
	// rejects, an outage) and this call was not the probe.
	DeferCircuitOpen = "circuit_open"
	// DeferRateLimit: the shared rate limit had no room for the call
	// before the attempt had to end.
	DeferRateLimit = "rate_limit"
	// DeferRedis: the shared state in Redis could not be read.
	DeferRedis = "redis_unavailable"
)

// DeferredError says a task did not finish for a reason that is not the
// member's: an Importer held the call back without sending it to WeChat
// (internal/guard returns it), or the handler could not write the result of
// an import WeChat made (Redis down; WeChat replays it on the retry). The
// task is retried after RetryAfter without spending its retry budget and is
// never archived for it.
type DeferredError struct {
	// Reason is one of the Defer… constants.
	Reason string
	// RetryAfter is when the call is worth trying again.
	RetryAfter time.Duration
	// Err is what held it back, when there is more to say than Reason.
	Err error
}

func (e *DeferredError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("import deferred (%s): %v", e.Reason, e.Err)
	}
	return "import deferred (" + e.Reason + ")"
}

func (e *DeferredError) Unwrap() error { return e.Err }

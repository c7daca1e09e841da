package importer

import (
	"context"
	"errors"
	"time"

	"github.com/cardimport/cardimport/internal/wechatpay"
)

// CallReserve is the part of an attempt kept for the call to WeChat itself:
// the longest wechatpay.Client.Import takes (a failed dial to the
// production host, then a whole call to the backup host) and a second for
// signing and bookkeeping. An importer that waits for room before calling
// (the guard) stops waiting this long before its context's deadline.
const CallReserve = wechatpay.MaxImportDuration + time.Second

// attemptMargin is how far ahead of asynq's deadline for the attempt the
// handler ends it itself. When asynq's deadline fires first, asynq records
// context.DeadlineExceeded without asking the handler, counts it as a
// failure, and so pushes the retry count past the handler's budget into
// the reserved retry (see reservedRetries); the next error of any kind,
// even a deferral, then archives the member. Ending the attempt first lets
// the handler's own decision (retry, or retries exhausted) reach asynq.
const attemptMargin = 2 * time.Second

// minWaitRoom is the least time an attempt of MinTimeout leaves to wait for
// the shared rate limit or the circuit before the call.
const minWaitRoom = 5 * time.Second

// MinTimeout is the shortest attempt timeout tasks.WithTimeout accepts
// (tasks.MinTimeout, which a test keeps equal to this): the
// handler's margin, CallReserve and a few seconds of waiting. A shorter
// attempt cannot fit a call that fails over to the backup host, and leaves
// a guarded importer no time to wait for its turn, so it would hand the
// task back at every attempt.
const MinTimeout = attemptMargin + CallReserve + minWaitRoom

// errAttemptDeadline is returned when the importer has not returned by the
// handler's deadline for the attempt. Its outcome is unknown, like any
// timeout: retried under the same out_request_no.
var errAttemptDeadline = errors.New("attempt deadline passed before the import returned")

// importWithin calls the importer with a deadline attemptMargin ahead of
// the attempt's, and returns by half the margin ahead of it even if the
// importer does not (an importer that ignores its context, or bookkeeping
// after the call that runs late), so the handler, not asynq, decides what
// the timed-out attempt costs. A late importer is left to finish on its
// own, as asynq would leave it.
func (h *Handler) importWithin(ctx context.Context, req wechatpay.ImportRequest) (settled, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return h.attempt(ctx, req)
	}
	// A task created without NewImportTask may have a timeout shorter than
	// MinTimeout: keep a quarter of it then, not the whole.
	margin := min(attemptMargin, time.Until(deadline)/4)
	ictx, cancel := context.WithDeadline(ctx, deadline.Add(-margin))
	defer cancel()
	type outcome struct {
		res settled
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := h.attempt(ictx, req)
		done <- outcome{res, err}
	}()
	giveUp := time.NewTimer(time.Until(deadline.Add(-margin / 2)))
	defer giveUp.Stop()
	select {
	case o := <-done:
		return o.res, o.err
	case <-giveUp.C:
		return settled{}, errAttemptDeadline
	}
}

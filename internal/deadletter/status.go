package deadletter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cardimport/cardimport/tasks"
)

// Status is where the import of one out_request_no stands: what `enqueue
// status` prints and the intake's GET /v1/imports/{out_request_no} answers.
// It never holds the openid.
type Status struct {
	OutRequestNo string `json:"out_request_no"`
	// Run is the run the member was handed over in, when it names one.
	Run string `json:"run,omitempty"`
	// State is asynq's task state, or "dead" when asynq no longer holds
	// the task (trimmed from its archive, or deleted) but the dead-letter
	// store does.
	State string `json:"state"`
	// Attempts counts the attempts that spent the retry budget, the one
	// running or the last one included. Retried is how many retries of
	// the budget the task has spent. Rate limits, systemic faults and
	// worker crashes spend none and are not counted. All three are
	// absent when asynq no longer holds the task.
	Attempts      *int      `json:"attempts,omitempty"`
	Retried       *int      `json:"retried,omitempty"`
	RetryBudget   *int      `json:"retry_budget,omitempty"`
	LastError     string    `json:"last_error,omitempty"`
	LastFailedAt  time.Time `json:"last_failed_at,omitzero"`
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
	// Outcome and Code are how the import ended: imported or
	// already_member with the card code, or dead.
	Outcome     string    `json:"outcome,omitempty"`
	Code        string    `json:"code,omitempty"`
	CompletedAt time.Time `json:"completed_at,omitzero"`
	// DeadLetter is the import's dead letter, when it has one.
	DeadLetter *Record `json:"dead_letter,omitempty"`
}

// ErrStatusNotFound says neither asynq nor the dead-letter store know the
// number.
var ErrStatusNotFound = errors.New("not found in the queue (never enqueued, or finished longer ago than its retention, 72h by default)")

// Status returns where the import of out_request_no no stands, or
// ErrStatusNotFound.
func (s *Store) Status(ctx context.Context, no string) (Status, error) {
	rep := Status{OutRequestNo: no}
	rec, err := s.Get(ctx, no)
	switch {
	case err == nil:
		rep.DeadLetter = &rec
		rep.Run = leniently(rec.Payload).Run
	case !errors.Is(err, ErrNotFound):
		return rep, err
	}
	info, err := s.insp.GetTaskInfo(s.queue, no)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		if rep.DeadLetter == nil {
			return rep, ErrStatusNotFound
		}
		rep.State = "dead"
		return rep, nil
	case err != nil:
		return rep, fmt.Errorf("task info: %w", err)
	}
	rep.Run = leniently(info.Payload).Run
	rep.State = info.State.String()
	budget := tasks.RetryBudget(info.MaxRetry)
	attempts := info.Retried
	switch info.State {
	case asynq.TaskStateActive, asynq.TaskStateCompleted, asynq.TaskStateArchived:
		// asynq counts a failure as a retry when it schedules one; the
		// attempt running now, or the one that ended the task, is not
		// in Retried.
		attempts++
	}
	rep.Attempts, rep.Retried, rep.RetryBudget = &attempts, &info.Retried, &budget
	rep.LastError = MaskPayloadOpenID(info.Payload, info.LastErr)
	rep.LastFailedAt = info.LastFailedAt
	if info.State != asynq.TaskStateCompleted && info.State != asynq.TaskStateArchived {
		rep.NextAttemptAt = info.NextProcessAt
	}
	rep.CompletedAt = info.CompletedAt
	if len(info.Result) > 0 {
		if res, err := tasks.DecodeResult(info.Result); err == nil {
			rep.Outcome, rep.Code = string(res.Outcome), res.Code
		}
	}
	return rep, nil
}

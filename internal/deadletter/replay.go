package deadletter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cardimport/cardimport/tasks"
)

// ReplayOutcome is what Replay did with one record.
type ReplayOutcome string

const (
	// Replayed: a new task with a fresh retry budget was enqueued under
	// the record's out_request_no (with dry run: would have been).
	Replayed ReplayOutcome = "replayed"
	// SkippedInFlight: a task with that out_request_no is already waiting,
	// running or retrying, e.g. from an earlier replay; nothing was done.
	SkippedInFlight ReplayOutcome = "in_flight"
	// SkippedDone: the task has completed since it failed; the record,
	// which its success should have removed, is removed now.
	SkippedDone ReplayOutcome = "done"
)

// ErrNotReplayable is matched by the error Replay returns for a record
// whose payload is not a valid import: enqueueing it again would fail the
// same way, so it needs a corrected `enqueue one` instead.
var ErrNotReplayable = errors.New("payload cannot be replayed")

// Replay puts the import of r back into the queue under the same
// out_request_no, so WeChat still recognises it, as a new task with a
// fresh retry budget (opts set its options, as for NewImportTask; its
// queue is always the store's). The archived asynq task, if asynq still
// has it, is deleted first: asynq's own "run" would keep its spent budget.
// The record stays, marked replayed, until the import succeeds. With
// dryRun nothing is changed and the outcome is what would happen.
func (s *Store) Replay(ctx context.Context, r Record, dryRun bool, opts ...tasks.Option) (ReplayOutcome, error) {
	p, err := tasks.DecodePayload(r.Payload)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNotReplayable, err)
	}
	task, err := tasks.NewImportTask(p, slices.Concat(opts, []tasks.Option{tasks.WithQueue(s.queue)})...)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNotReplayable, err)
	}
	// The task ID is the record's key; a payload whose out_request_no
	// differs was not enqueued by our producers, and replaying it under
	// another number could import the member twice.
	if p.OutRequestNo != r.OutRequestNo {
		return "", fmt.Errorf("%w: payload out_request_no differs from the task ID", ErrNotReplayable)
	}

	info, err := s.insp.GetTaskInfo(s.queue, r.OutRequestNo)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		// Trimmed from asynq's archive, deleted on the dashboard, or its
		// retention ran out: the store is the only copy.
	case err != nil:
		return "", fmt.Errorf("replay: task info: %w", err)
	case info.State == asynq.TaskStateCompleted:
		if !dryRun {
			if err := s.Remove(ctx, r.OutRequestNo); err != nil {
				return "", err
			}
		}
		return SkippedDone, nil
	case info.State != asynq.TaskStateArchived:
		return SkippedInFlight, nil
	case !dryRun:
		if err := s.insp.DeleteTask(s.queue, r.OutRequestNo); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return "", fmt.Errorf("replay: delete archived task: %w", err)
		}
	}
	if dryRun {
		return Replayed, nil
	}
	// Taken before the enqueue: a worker may fail the new task before
	// the record is marked.
	at := time.Now()
	if _, err := s.cli.EnqueueContext(ctx, task); err != nil {
		if errors.Is(err, asynq.ErrTaskIDConflict) {
			// Another replay (or enqueue) got there first.
			return SkippedInFlight, nil
		}
		return "", fmt.Errorf("replay: enqueue: %w", err)
	}
	if err := s.markReplayed(ctx, r.OutRequestNo, at); err != nil {
		return "", err
	}
	return Replayed, nil
}

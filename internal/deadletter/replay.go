package deadletter

import (
	"context"
	"errors"
	"fmt"
	"slices"

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
	// running or retrying, e.g. from an earlier or concurrent replay, or
	// the dashboard's "run"; nothing was done.
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
// A task in any other state is left alone and the record skipped (never an
// error), since someone put it back meanwhile. The record stays, marked replayed, until the import succeeds. With
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

	if dryRun {
		return s.wouldReplay(r.OutRequestNo)
	}
	if s.beforeDelete != nil {
		s.beforeDelete(r.OutRequestNo)
	}
	// Looking at the task and deleting it must be one step: between two
	// round trips an operator's "run", or another replay, can put the task
	// back, and asynq's DeleteTask would delete it whatever its state
	// (a completed task with its card code included).
	state, failures, err := s.deleteArchived(ctx, r.OutRequestNo)
	if err != nil {
		return "", err
	}
	switch state {
	case "", "archived":
		// Deleted now; or trimmed from asynq's archive, deleted on the
		// dashboard, its retention run out: the store is the only copy.
	case "completed":
		if err := s.Remove(ctx, r.OutRequestNo); err != nil {
			return "", err
		}
		return SkippedDone, nil
	default:
		// pending, active, scheduled, retry: someone put it back first.
		return SkippedInFlight, nil
	}
	// The run counts the new task's outcome in place of the member's dead
	// one, not beside it as it would a new enqueue's.
	if err := s.results.MarkReplay(ctx, p.Run, r.OutRequestNo); err != nil {
		return "", fmt.Errorf("replay: %w", err)
	}
	if _, err := s.cli.EnqueueContext(ctx, task); err != nil {
		if errors.Is(err, asynq.ErrTaskIDConflict) {
			// Another replay (or enqueue) got there first; its mark,
			// the same as ours, stays.
			return SkippedInFlight, nil
		}
		_ = s.results.UnmarkReplay(context.WithoutCancel(ctx), p.Run, r.OutRequestNo)
		return "", fmt.Errorf("replay: enqueue: %w", err)
	}
	if s.afterEnqueue != nil {
		s.afterEnqueue(r.OutRequestNo)
	}
	if err := s.markReplayed(ctx, r.OutRequestNo, failures); err != nil {
		return "", err
	}
	return Replayed, nil
}

// wouldReplay is Replay's dry run: what it would do now, changing nothing.
func (s *Store) wouldReplay(outRequestNo string) (ReplayOutcome, error) {
	info, err := s.insp.GetTaskInfo(s.queue, outRequestNo)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		return Replayed, nil
	case err != nil:
		return "", fmt.Errorf("replay: task info: %w", err)
	case info.State == asynq.TaskStateCompleted:
		return SkippedDone, nil
	case info.State != asynq.TaskStateArchived:
		return SkippedInFlight, nil
	}
	return Replayed, nil
}

// deleteArchived deletes the task of outRequestNo if asynq holds it
// archived, and returns the state it found ("" for none) and the record's
// failure count (asynqlayout.go says why this reaches into asynq).
func (s *Store) deleteArchived(ctx context.Context, outRequestNo string) (state, failures string, err error) {
	res, err := deleteArchivedScript.Run(ctx, s.rdb, []string{asynqTaskKey(s.queue, outRequestNo), asynqArchivedKey(s.queue), s.rec + outRequestNo}, outRequestNo).StringSlice()
	if err != nil {
		return "", "", fmt.Errorf("replay: delete archived task: %w", err)
	}
	if len(res) != 2 {
		return "", "", fmt.Errorf("replay: delete archived task: unexpected reply %q", res)
	}
	return res[0], res[1], nil
}

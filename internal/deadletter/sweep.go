package deadletter

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/cardimport/cardimport/tasks"
)

// SweepResult says what one sweep did.
type SweepResult struct {
	// Archived is how many import tasks asynq's archive holds.
	Archived int
	// Recorded is how many of them the store lacked and now has.
	Recorded int
}

// Sweep reconciles the store with asynq's archive: every archived import
// without a record gets one, built from the task's last error. The worker's
// error handler records failures as they happen; the sweep catches what it
// cannot see — a lease that expired on a task's last retry (asynq's
// recoverer archives it without calling the handler), an operator's
// "archive" on the dashboard, a record that failed to write — before
// asynq's trimming can lose it. It never deletes from asynq's archive,
// which the dashboard shows.
func (s *Store) Sweep(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	for page := 1; ; page++ {
		infos, err := s.insp.ListArchivedTasks(s.queue, asynq.Page(page), asynq.PageSize(pageSize))
		if errors.Is(err, asynq.ErrQueueNotFound) {
			return res, nil
		}
		if err != nil {
			return res, fmt.Errorf("dead letters: sweep: list archive: %w", err)
		}
		n, err := s.sweepPage(ctx, infos)
		res.Recorded += n
		if err != nil {
			return res, err
		}
		for _, info := range infos {
			if info.Type == tasks.TypeImport {
				res.Archived++
			}
		}
		if len(infos) < pageSize {
			return res, nil
		}
	}
}

// sweepPage records the tasks of one page of the archive that the store
// lacks, or holds as replays in flight: an archived task with a replayed
// record is the replay failing again out of the handler's sight.
func (s *Store) sweepPage(ctx context.Context, infos []*asynq.TaskInfo) (int, error) {
	pipe := s.rdb.Pipeline()
	states := make([]*redis.StringCmd, len(infos))
	for i, info := range infos {
		states[i] = pipe.HGet(ctx, s.rec+info.ID, "state")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("dead letters: sweep: %w", err)
	}
	recorded := 0
	for i, info := range infos {
		if info.Type != tasks.TypeImport {
			continue
		}
		state, err := states[i].Result()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return recorded, fmt.Errorf("dead letters: sweep: %w", err)
		case State(state) != StateReplayed:
			continue
		default:
			// A replay deletes the archived task before it enqueues the
			// new one; if the task is archived now, the new one died.
			now, err := s.insp.GetTaskInfo(s.queue, info.ID)
			if err != nil || now.State != asynq.TaskStateArchived {
				continue
			}
			info = now
		}
		rec := FromArchived(info)
		wrote, err := s.reconcile(ctx, rec)
		if err != nil {
			return recorded, fmt.Errorf("dead letters: sweep: %w", err)
		}
		if wrote {
			recorded++
			// A task archived out of the handler's sight is dead too: its
			// run counts it and its outcome is told (settling twice is
			// harmless: a task already settled dead is not counted again).
			if err := s.Settle(ctx, info.ID, leniently(info.Payload), rec.deadResult()); err != nil {
				return recorded, fmt.Errorf("dead letters: sweep: %w", err)
			}
		}
	}
	return recorded, nil
}

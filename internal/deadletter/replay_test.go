package deadletter_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/tasks"
)

// archive enqueues p and archives it at once, as asynq's recoverer or an
// operator's "archive" does: no handler sees it, so no record is written.
func (b *testBundle) archive(t *testing.T, p tasks.Payload, opts ...tasks.Option) {
	t.Helper()
	b.enqueue(t, p, opts...)
	require.NoError(t, b.insp.ArchiveTask(b.queue, p.OutRequestNo))
}

// complete enqueues p and lets a server whose handler always succeeds
// finish it, leaving it completed for the retention window.
func (b *testBundle) complete(t *testing.T, p tasks.Payload) {
	t.Helper()
	b.enqueue(t, p)
	srv := asynq.NewServer(b.r.Opt, asynq.Config{Queues: map[string]int{b.queue: 1}, LogLevel: asynq.FatalLevel})
	require.NoError(t, srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })))
	defer srv.Shutdown()
	b.waitState(t, p.OutRequestNo, asynq.TaskStateCompleted)
}

func (b *testBundle) waitState(t *testing.T, id string, state asynq.TaskState) *asynq.TaskInfo {
	t.Helper()
	return testkit.WaitState(t, b.insp, b.queue, id, state, 20*time.Second)
}

func TestSweepRecordsWhatAsynqArchivedAlone(t *testing.T) {
	t.Parallel()
	b := setup(t)

	res, err := b.store.Sweep(b.ctx)
	require.NoError(t, err, "a queue that does not exist yet is empty")
	require.Equal(t, deadletter.SweepResult{}, res)

	lost := payload(1) // archived out of the handler's sight
	b.archive(t, lost)
	known := payload(2) // archived and recorded by the worker
	b.archive(t, known)
	require.NoError(t, b.store.Record(b.ctx, refused(t, known, 403, "NO_AUTH", time.Now())))
	b.enqueue(t, payload(3)) // pending: not a dead letter

	res, err = b.store.Sweep(b.ctx)
	require.NoError(t, err)
	require.Equal(t, deadletter.SweepResult{Archived: 2, Recorded: 1}, res)
	got, err := b.store.Get(b.ctx, lost.OutRequestNo)
	require.NoError(t, err)
	require.Equal(t, deadletter.ReasonArchivedByAsynq, got.Reason)
	require.Equal(t, "oUpF****0001", got.OpenIDMasked)
	require.Equal(t, encode(t, lost), got.Payload, "the payload is kept to replay it")
	k, err := b.store.Get(b.ctx, known.OutRequestNo)
	require.NoError(t, err)
	require.Equal(t, 1, k.Attempts, "a recorded failure is not counted again")
	require.Equal(t, "NO_AUTH", k.WeChatCode)

	res, err = b.store.Sweep(b.ctx)
	require.NoError(t, err)
	require.Equal(t, deadletter.SweepResult{Archived: 2, Recorded: 0}, res, "a second sweep finds nothing new")
	n, err := b.store.Count(b.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
}

func TestReplay(t *testing.T) {
	t.Parallel()
	b := setup(t)

	// A member refused after spending 3 retries: archived, recorded.
	p := payload(1)
	b.archive(t, p, tasks.WithMaxRetry(5))
	rec := refused(t, p, 403, "NO_AUTH", time.Now())
	require.NoError(t, b.store.Record(b.ctx, rec))

	out, err := b.store.Replay(b.ctx, rec, true)
	require.NoError(t, err)
	require.Equal(t, deadletter.Replayed, out)
	b.waitState(t, p.OutRequestNo, asynq.TaskStateArchived)
	got, err := b.store.Get(b.ctx, p.OutRequestNo)
	require.NoError(t, err)
	require.Equal(t, deadletter.StateDead, got.State, "a dry run changes nothing")

	out, err = b.store.Replay(b.ctx, rec, false, tasks.WithMaxRetry(7))
	require.NoError(t, err)
	require.Equal(t, deadletter.Replayed, out)
	info := b.waitState(t, p.OutRequestNo, asynq.TaskStatePending)
	require.Equal(t, 0, info.Retried, "a fresh retry budget")
	require.Equal(t, 7, tasks.RetryBudget(info.MaxRetry), "the options given")
	require.Equal(t, encode(t, p), info.Payload)
	got, err = b.store.Get(b.ctx, p.OutRequestNo)
	require.NoError(t, err)
	require.Equal(t, deadletter.StateReplayed, got.State, "kept until the import succeeds")
	require.Equal(t, 1, got.Replays)
	require.WithinDuration(t, time.Now(), got.ReplayedAt, time.Minute, "Redis's clock, the test's host's here")

	out, err = b.store.Replay(b.ctx, got, false)
	require.NoError(t, err)
	require.Equal(t, deadletter.SkippedInFlight, out, "a replay in flight is not put back twice")

	// A replayed task that dies again where the handler cannot see it is
	// dead again after the sweep.
	require.NoError(t, b.insp.ArchiveTask(b.queue, p.OutRequestNo))
	res, err := b.store.Sweep(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, res.Recorded)
	got, err = b.store.Get(b.ctx, p.OutRequestNo)
	require.NoError(t, err)
	require.Equal(t, deadletter.StateDead, got.State)
	require.Equal(t, deadletter.ReasonArchivedByAsynq, got.Reason)
}

func TestReplayWhenAsynqHasNoTask(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// asynq trimmed it from its archive: the store is the only copy.
	p := payload(1)
	rec := refused(t, p, 403, "NO_AUTH", time.Now())
	require.NoError(t, b.store.Record(b.ctx, rec))
	out, err := b.store.Replay(b.ctx, rec, false)
	require.NoError(t, err)
	require.Equal(t, deadletter.Replayed, out)
	b.waitState(t, p.OutRequestNo, asynq.TaskStatePending)
}

func TestReplayOfACompletedImportRemovesTheRecord(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := payload(1)
	b.complete(t, p)
	rec := refused(t, p, 403, "NO_AUTH", time.Now())
	require.NoError(t, b.store.Record(b.ctx, rec))

	out, err := b.store.Replay(b.ctx, rec, true)
	require.NoError(t, err)
	require.Equal(t, deadletter.SkippedDone, out)
	_, err = b.store.Get(b.ctx, p.OutRequestNo)
	require.NoError(t, err, "a dry run removes nothing")

	out, err = b.store.Replay(b.ctx, rec, false)
	require.NoError(t, err)
	require.Equal(t, deadletter.SkippedDone, out)
	_, err = b.store.Get(b.ctx, p.OutRequestNo)
	require.ErrorIs(t, err, deadletter.ErrNotFound)
	b.waitState(t, p.OutRequestNo, asynq.TaskStateCompleted)
}

func TestReplayRefusesAnInvalidPayload(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rec := deadletter.FromFailure("1900000001-20261128-000001", []byte(`{"card_id":"`+testCard+`"}`), 1, tasks.ErrInvalidPayload, time.Now())
	require.NoError(t, b.store.Record(b.ctx, rec))
	_, err := b.store.Replay(b.ctx, rec, false)
	require.ErrorIs(t, err, deadletter.ErrNotReplayable)
	require.ErrorContains(t, err, "openid: is required")
}

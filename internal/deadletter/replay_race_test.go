package deadletter_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/deadletter"
)

// serve runs a server on the test's queue with handler h until the test
// (or the returned stop) ends it.
func (b *testBundle) serve(t *testing.T, h asynq.HandlerFunc) (stop func()) {
	t.Helper()
	srv := asynq.NewServer(b.r.Opt, asynq.Config{Queues: map[string]int{b.queue: 1}, Concurrency: 1, LogLevel: asynq.FatalLevel})
	require.NoError(t, srv.Start(h))
	var once sync.Once
	stop = func() { once.Do(srv.Shutdown) }
	t.Cleanup(stop)
	return stop
}

// TestReplayLeavesATaskPutBackMeanwhile lands an operator's "run" on the
// dashboard between the replay's look at the archived task and its
// removal: the task put back (pending, running, or already completed with
// its card code) is the operator's, and the replay only counts it skipped.
func TestReplayLeavesATaskPutBackMeanwhile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// run puts the archived task back and takes it as far as the
		// case needs; it returns what ends the case.
		run     func(t *testing.T, b *testBundle, id string) (done func())
		state   asynq.TaskState
		want    deadletter.ReplayOutcome
		keepRec bool
	}{
		{
			name: "pending",
			run: func(t *testing.T, b *testBundle, id string) func() {
				require.NoError(t, b.insp.RunTask(b.queue, id))
				return func() {}
			},
			state: asynq.TaskStatePending, want: deadletter.SkippedInFlight, keepRec: true,
		},
		{
			name: "running",
			run: func(t *testing.T, b *testBundle, id string) func() {
				release := make(chan struct{})
				var once sync.Once
				free := func() { once.Do(func() { close(release) }) }
				stop := b.serve(t, func(ctx context.Context, _ *asynq.Task) error {
					select {
					case <-release:
					case <-ctx.Done():
					}
					return nil
				})
				t.Cleanup(free) // runs before stop: a failed case does not wait for the shutdown timeout
				require.NoError(t, b.insp.RunTask(b.queue, id))
				b.waitState(t, id, asynq.TaskStateActive)
				return func() { free(); stop() }
			},
			state: asynq.TaskStateActive, want: deadletter.SkippedInFlight, keepRec: true,
		},
		{
			name: "completed",
			run: func(t *testing.T, b *testBundle, id string) func() {
				stop := b.serve(t, func(_ context.Context, task *asynq.Task) error {
					_, err := task.ResultWriter().Write([]byte(`{"code":"CARDCODE-1"}`))
					return err
				})
				require.NoError(t, b.insp.RunTask(b.queue, id))
				b.waitState(t, id, asynq.TaskStateCompleted)
				stop()
				return func() {}
			},
			// The import succeeded: the record goes, as the worker's
			// success would have removed it.
			state: asynq.TaskStateCompleted, want: deadletter.SkippedDone, keepRec: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			p := payload(1)
			b.archive(t, p)
			rec := refused(t, p, 403, "NO_AUTH", time.Now())
			require.NoError(t, b.store.Record(b.ctx, rec))
			var done func()
			deadletter.SetReplayHooks(b.store, func(id string) { done = tt.run(t, b, id) }, nil)

			out, err := b.store.Replay(b.ctx, rec, false)
			require.NoError(t, err, "a task put back meanwhile is skipped, not an error")
			require.Equal(t, tt.want, out)
			require.NotNil(t, done, "the hook ran")
			info, err := b.insp.GetTaskInfo(b.queue, p.OutRequestNo)
			require.NoError(t, err, "the operator's task is still there")
			require.Equal(t, tt.state, info.State)
			if tt.state == asynq.TaskStateCompleted {
				require.JSONEq(t, `{"code":"CARDCODE-1"}`, string(info.Result), "its outcome is kept")
			}
			done()
			got, err := b.store.Get(b.ctx, p.OutRequestNo)
			if !tt.keepRec {
				require.ErrorIs(t, err, deadletter.ErrNotFound)
				return
			}
			require.NoError(t, err)
			require.Equal(t, deadletter.StateDead, got.State, "not marked: this replay put nothing back")
			require.Zero(t, got.Replays)
		})
	}
}

// TestConcurrentReplays runs three replays of the same dead letters at
// once, as two operators (or a retried cron job) might: each member is
// put back exactly once, and the others count it skipped without error.
func TestConcurrentReplays(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n, runs = 60, 3
	recs := make([]deadletter.Record, n)
	for i := range n {
		p := payload(i)
		b.archive(t, p)
		recs[i] = refused(t, p, 403, "NO_AUTH", time.Now())
		require.NoError(t, b.store.Record(b.ctx, recs[i]))
	}

	var mu sync.Mutex
	replayed := map[string]int{}
	errs := make(chan error, runs*n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range runs {
		wg.Go(func() {
			<-start
			for _, r := range recs {
				out, err := b.store.Replay(b.ctx, r, false)
				if err != nil {
					errs <- fmt.Errorf("%s: %w", r.OutRequestNo, err)
					continue
				}
				if out == deadletter.Replayed {
					mu.Lock()
					replayed[r.OutRequestNo]++
					mu.Unlock()
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	for _, r := range recs {
		require.Equal(t, 1, replayed[r.OutRequestNo], "%s put back once", r.OutRequestNo)
		got, err := b.store.Get(b.ctx, r.OutRequestNo)
		require.NoError(t, err)
		require.Equal(t, 1, got.Replays, "%s replayed once", r.OutRequestNo)
		require.Equal(t, deadletter.StateReplayed, got.State)
	}
	pending, err := b.insp.ListPendingTasks(b.queue, asynq.PageSize(2*n))
	require.NoError(t, err)
	require.Len(t, pending, n, "one task per member")
	for _, info := range pending {
		require.Zero(t, info.Retried, "a fresh task, %s", info.ID)
	}
}

// TestReplayIgnoresTheWorkersClock records failures with a worker clock
// far behind or ahead of the replaying host's: whether the record is a
// replay in flight or dead again depends only on whether the replayed task
// failed after it was put back.
func TestReplayIgnoresTheWorkersClock(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		skew time.Duration
		// failsAgain: the replayed task fails (on a worker with the skewed
		// clock) before the replay has marked the record; else the
		// earlier failure was recorded with the skewed clock.
		failsAgain bool
		want       deadletter.State
	}{
		{name: "fails again, worker clock behind", skew: -time.Hour, failsAgain: true, want: deadletter.StateDead},
		{name: "fails again, worker clock ahead", skew: time.Hour, failsAgain: true, want: deadletter.StateDead},
		{name: "earlier failure, worker clock behind", skew: -time.Hour, want: deadletter.StateReplayed},
		{name: "earlier failure, worker clock ahead", skew: time.Hour, want: deadletter.StateReplayed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			p := payload(1)
			b.archive(t, p)
			at := time.Now()
			if !tt.failsAgain {
				at = at.Add(tt.skew)
			}
			rec := refused(t, p, 403, "NO_AUTH", at)
			require.NoError(t, b.store.Record(b.ctx, rec))
			if tt.failsAgain {
				deadletter.SetReplayHooks(b.store, nil, func(id string) {
					// What the worker's error handler does before asynq
					// archives the task.
					require.NoError(t, b.store.Record(b.ctx, refused(t, p, 403, "NO_AUTH", time.Now().Add(tt.skew))))
					require.NoError(t, b.insp.ArchiveTask(b.queue, id))
				})
			}

			out, err := b.store.Replay(b.ctx, rec, false)
			require.NoError(t, err)
			require.Equal(t, deadletter.Replayed, out)
			got, err := b.store.Get(b.ctx, p.OutRequestNo)
			require.NoError(t, err)
			require.Equal(t, tt.want, got.State)
			require.Equal(t, 1, got.Replays)

			// The sweep must not count a failure the worker recorded.
			_, err = b.store.Sweep(b.ctx)
			require.NoError(t, err)
			got, err = b.store.Get(b.ctx, p.OutRequestNo)
			require.NoError(t, err)
			wantAttempts := 1
			if tt.failsAgain {
				wantAttempts = 2
			}
			require.Equal(t, wantAttempts, got.Attempts)
			require.Equal(t, tt.want, got.State)
		})
	}
}

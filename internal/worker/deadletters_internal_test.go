package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/config"
	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/tasks"
)

// TestErrorHandlerFollowsAsynqsArchiveRule runs the dead-letter hooks in
// a real asynq server whose handler fails in the ways the import handler
// cannot report itself: a plain error on the last retry (asynq archives it
// on its own rule) is recorded, an error with retries left and a revoked
// task are not.
func TestErrorHandlerFollowsAsynqsArchiveRule(t *testing.T) {
	t.Parallel()
	r := testkit.NewRedis(t)
	queue := r.Queue(t)
	cfg := config.Worker{Redis: r.Opt, Queue: queue, Concurrency: 2, RetryMinDelay: time.Hour, RetryMaxDelay: time.Hour, ShutdownTimeout: time.Second}
	dead, err := newDeadLetters(cfg, zerolog.Nop())
	require.NoError(t, err)
	t.Cleanup(dead.close)

	member := func(no string) tasks.Payload {
		return tasks.Payload{CardID: "pbLatjvWOibDc5-TBnbUk1pD12o0", OpenID: "oUpF8uMuAJO_M2pxb" + no, OutRequestNo: no}
	}
	ctx := testkit.Context(t)

	srvCfg := serverConfig(cfg, zerolog.Nop())
	srvCfg.ErrorHandler = dead
	srv := asynq.NewServer(r.Opt, srvCfg)
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeImport, func(ctx context.Context, task *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		if id == "n-revoked" {
			return asynq.RevokeTask
		}
		return errors.New("context deadline exceeded")
	})
	require.NoError(t, srv.Start(mux))
	t.Cleanup(srv.Shutdown)

	client := asynq.NewClient(r.Opt)
	t.Cleanup(func() { _ = client.Close() })
	enqueue := func(p tasks.Payload, maxRetry int) {
		task, err := tasks.NewImportTask(p, tasks.WithQueue(queue))
		require.NoError(t, err)
		_, err = client.Enqueue(task, asynq.MaxRetry(maxRetry)) // overrides the budget
		require.NoError(t, err)
	}
	lastRetry, retriesLeft, revoked := member("n-last-retry"), member("n-retries-left"), member("n-revoked")
	enqueue(lastRetry, 0)
	enqueue(retriesLeft, 5)
	enqueue(revoked, 0)

	insp := asynq.NewInspector(r.Opt)
	t.Cleanup(func() { _ = insp.Close() })
	require.Eventually(t, func() bool {
		q, err := insp.GetQueueInfo(queue)
		return err == nil && q.Archived == 1 && q.Retry == 1 && q.Pending+q.Active == 0
	}, 20*time.Second, 10*time.Millisecond)

	rec, err := dead.store.Get(ctx, lastRetry.OutRequestNo)
	require.NoError(t, err)
	require.Equal(t, deadletter.ReasonRetriesExhausted, rec.Reason)
	require.Equal(t, "context deadline exceeded", rec.Message)
	require.Equal(t, "oUpF****etry", rec.OpenIDMasked)
	for _, no := range []string{retriesLeft.OutRequestNo, revoked.OutRequestNo} {
		_, err := dead.store.Get(ctx, no)
		require.ErrorIs(t, err, deadletter.ErrNotFound, no)
	}
	n, err := dead.store.Count(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
}

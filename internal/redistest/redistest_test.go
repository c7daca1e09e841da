package redistest_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/redistest"
)

// TestQueueLeavesNoKeys: a test's queue, with pending, completed and
// archived tasks, leaves no key behind on a shared server.
func TestQueueLeavesNoKeys(t *testing.T) {
	r := redistest.New(t)
	var q string
	t.Run("use", func(t *testing.T) {
		q = r.Queue(t)
		c := asynq.NewClient(r.Opt)
		defer c.Close()
		for _, id := range []string{"a", "b"} {
			_, err := c.Enqueue(asynq.NewTask("t", nil, asynq.TaskID(id), asynq.Queue(q), asynq.Retention(time.Hour)))
			require.NoError(t, err)
		}
		srv := asynq.NewServer(r.Opt, asynq.Config{Queues: map[string]int{q: 1}, LogLevel: asynq.FatalLevel})
		done := make(chan struct{}, 2)
		require.NoError(t, srv.Start(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
			done <- struct{}{}
			id, _ := asynq.GetTaskID(ctx)
			if id == "b" {
				return asynq.SkipRetry
			}
			return nil
		})))
		for range 2 {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("tasks not processed")
			}
		}
		srv.Shutdown()
	})
	rc := r.Opt.MakeRedisClient().(redis.UniversalClient)
	defer rc.Close()
	keys, err := rc.Keys(context.Background(), "asynq:{"+q+"}:*").Result()
	require.NoError(t, err)
	require.Empty(t, keys)
}

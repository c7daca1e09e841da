package testkit_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/testkit"
)

// TestQueueLeavesNoKeys: a test's queue, with pending, completed and
// archived tasks, leaves no key behind on a shared server.
func TestQueueLeavesNoKeys(t *testing.T) {
	r := testkit.NewRedis(t)
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

// TestPrivateDatabases: two tests' private databases hold each other's
// queues apart (asynq's list of queues shows only the test's own), and
// each test's keys are gone when it ends.
func TestPrivateDatabases(t *testing.T) {
	var rs [2]*testkit.Redis
	var queues [2]string
	use := func(t *testing.T, i int) {
		rs[i] = testkit.NewPrivateRedis(t)
		queues[i] = rs[i].Queue(t) // a name no other test uses, dropped at the end
		c := asynq.NewClient(rs[i].Opt)
		defer c.Close()
		_, err := c.Enqueue(asynq.NewTask("t", nil), asynq.Queue(queues[i]))
		require.NoError(t, err)
	}
	listed := func(r *testkit.Redis) []string {
		insp := asynq.NewInspector(r.Opt)
		defer insp.Close()
		qs, err := insp.Queues()
		require.NoError(t, err)
		return qs
	}
	t.Run("first", func(t *testing.T) {
		use(t, 0)
		t.Run("second, while the first holds its database", func(t *testing.T) {
			use(t, 1)
			require.NotEqual(t, rs[0].URL, rs[1].URL)
			require.Equal(t, []string{queues[0]}, listed(rs[0]))
			require.Equal(t, []string{queues[1]}, listed(rs[1]))
		})
	})
	if rs[0].Embedded != nil {
		return // each embedded server was its test's own and is gone
	}
	// Another test may have claimed a database meanwhile: look only for
	// what these two wrote.
	for i, r := range rs {
		rc := r.Opt.MakeRedisClient().(redis.UniversalClient)
		keys, err := rc.Keys(context.Background(), "asynq:{"+queues[i]+"}*").Result()
		require.NoError(t, err)
		listed, err := rc.SIsMember(context.Background(), "asynq:queues", queues[i]).Result()
		require.NoError(t, err)
		_ = rc.Close()
		require.Empty(t, keys, "%s left no keys of its queue", r.URL)
		require.False(t, listed, "%s lists the queue no more", r.URL)
	}
}

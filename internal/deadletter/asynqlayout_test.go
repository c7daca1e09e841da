package deadletter

import (
	"context"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/testkit"
)

// TestAsynqLayout: what asynqlayout.go assumes of asynq's Redis layout
// holds for the asynq this module builds with. If an upgrade moves a task's
// hash, renames its fields or its archive, this fails before a replay or a
// result goes astray.
func TestAsynqLayout(t *testing.T) {
	t.Parallel()
	r := testkit.NewRedis(t)
	q := r.Queue(t)
	ctx := context.Background()
	rdb := r.Opt.MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
	client := asynq.NewClient(r.Opt)
	defer client.Close()
	insp := asynq.NewInspector(r.Opt)
	defer insp.Close()

	_, err := client.Enqueue(asynq.NewTask("layout:probe", []byte(`{}`)), asynq.TaskID("layout-1"), asynq.Queue(q))
	require.NoError(t, err)
	h, err := rdb.HGetAll(ctx, asynqTaskKey(q, "layout-1")).Result()
	require.NoError(t, err)
	require.Equal(t, "pending", h["state"], "a task's hash is asynqTaskKey, its state in field \"state\"")
	require.NotEmpty(t, h["msg"])

	// What Settle writes in "result" is what asynq shows as the result.
	require.NoError(t, rdb.HSet(ctx, asynqTaskKey(q, "layout-1"), "result", `{"outcome":"imported"}`).Err())
	info, err := insp.GetTaskInfo(q, "layout-1")
	require.NoError(t, err)
	require.JSONEq(t, `{"outcome":"imported"}`, string(info.Result))

	// An archived task is in asynqArchivedKey, with state "archived", and
	// deleteArchivedScript removes it as asynq's own delete does.
	require.NoError(t, insp.ArchiveTask(q, "layout-1"))
	_, err = rdb.ZScore(ctx, asynqArchivedKey(q), "layout-1").Result()
	require.NoError(t, err, "archived tasks are in asynqArchivedKey")
	res, err := deleteArchivedScript.Run(ctx, rdb, []string{asynqTaskKey(q, "layout-1"), asynqArchivedKey(q), "cardimport:{" + q + "}:dead:layout-1"}, "layout-1").StringSlice()
	require.NoError(t, err)
	require.Equal(t, []string{"archived", "0"}, res)
	_, err = insp.GetTaskInfo(q, "layout-1")
	require.ErrorIs(t, err, asynq.ErrTaskNotFound, "asynq no longer knows the deleted task")
	n, err := rdb.Exists(ctx, asynqTaskKey(q, "layout-1")).Result()
	require.NoError(t, err)
	require.Zero(t, n)
}

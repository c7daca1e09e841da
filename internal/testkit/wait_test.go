package testkit_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/testkit"
)

// fatalTB records WaitState's failure instead of ending the test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }

// TestWaitState: the task's state once it gets there; otherwise a failure
// that names the task, the state wanted, and what was last seen.
func TestWaitState(t *testing.T) {
	t.Parallel()
	r := testkit.NewRedis(t)
	q := r.Queue(t)
	c := asynq.NewClient(r.Opt)
	defer c.Close()
	insp := asynq.NewInspector(r.Opt)
	defer insp.Close()
	_, err := c.Enqueue(asynq.NewTask("t", nil, asynq.TaskID("done"), asynq.Queue(q), asynq.Retention(time.Hour)))
	require.NoError(t, err)
	_, err = c.Enqueue(asynq.NewTask("t", nil, asynq.TaskID("waiting"), asynq.Queue(q)), asynq.ProcessIn(time.Hour))
	require.NoError(t, err)
	srv := asynq.NewServer(r.Opt, asynq.Config{Queues: map[string]int{q: 1}, LogLevel: asynq.FatalLevel})
	require.NoError(t, srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })))
	defer srv.Shutdown()

	info := testkit.WaitState(t, insp, q, "done", asynq.TaskStateCompleted, 20*time.Second)
	require.Equal(t, "done", info.ID)
	require.Equal(t, asynq.TaskStateCompleted, info.State)

	f := &fatalTB{TB: t}
	logs := &testkit.Buffer{}
	_, _ = logs.Write([]byte("worker said so"))
	require.Nil(t, testkit.WaitState(f, insp, q, "waiting", asynq.TaskStateCompleted, 50*time.Millisecond, logs))
	for _, want := range []string{"task waiting", q, "not completed within 50ms", "state scheduled", "worker said so"} {
		require.Contains(t, f.msg, want)
	}

	f = &fatalTB{TB: t}
	require.Nil(t, testkit.WaitState(f, insp, q, "missing", asynq.TaskStateCompleted, 50*time.Millisecond))
	require.True(t, strings.Contains(f.msg, "task missing") && strings.Contains(f.msg, "not completed"), f.msg)
	require.Contains(t, f.msg, asynq.ErrTaskNotFound.Error())
}

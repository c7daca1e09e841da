package enqueuecmd

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/tasks"
)

// TestStatus puts one import in each state a task can be in and asks
// `enqueue status` about it, as text and as JSON.
func TestStatus(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := b.store(t)
	client := asynq.NewClient(b.redis.Opt)
	t.Cleanup(func() { _ = client.Close() })
	enqueue := func(p tasks.Payload, opts ...asynq.Option) {
		task, err := tasks.NewImportTask(p, tasks.WithQueue(b.queue))
		require.NoError(t, err)
		_, err = client.Enqueue(task, opts...)
		require.NoError(t, err)
	}

	pending, scheduled, archived, dead := deadMember(1, deadCard), deadMember(2, deadCard), deadMember(3, deadCard), deadMember(4, deadCard)
	completed, retry, active := deadMember(5, deadCard), deadMember(6, deadCard), deadMember(7, deadCard)
	enqueue(pending)
	enqueue(scheduled, asynq.ProcessIn(time.Hour))
	b.refuse(t, s, archived, 403, "NO_AUTH", time.Now())
	// A dead letter asynq no longer has (trimmed from its archive).
	b.refuse(t, s, dead, 404, "NOT_FOUND", time.Now())
	require.NoError(t, b.insp.DeleteTask(b.queue, dead.OutRequestNo))

	// A server on a queue of its own (the pending and scheduled tasks
	// above must stay so) completes, fails or holds each task by its
	// number.
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	srvQueue := b.redis.Queue(t)
	srv := asynq.NewServer(b.redis.Opt, asynq.Config{
		Queues: map[string]int{srvQueue: 1}, LogLevel: asynq.FatalLevel, ShutdownTimeout: time.Second,
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return time.Hour },
	})
	require.NoError(t, srv.Start(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		switch id {
		case completed.OutRequestNo:
			_, err := task.ResultWriter().Write([]byte(`{"outcome":"imported","code":"880000000005"}`))
			return err
		case retry.OutRequestNo:
			return errors.New("import: wechat pay transient: http 500 SYSTEM_ERROR: 系统错误 [request_id 08F1-6]")
		}
		started <- struct{}{}
		<-release
		return nil
	})))
	t.Cleanup(func() { close(release); srv.Shutdown() })
	for _, p := range []tasks.Payload{completed, retry, active} {
		task, err := tasks.NewImportTask(p, tasks.WithQueue(srvQueue))
		require.NoError(t, err)
		_, err = client.Enqueue(task)
		require.NoError(t, err)
	}
	<-started
	waitState := func(no string, state asynq.TaskState) {
		testkit.WaitState(t, b.insp, srvQueue, no, state, 20*time.Second)
	}
	waitState(completed.OutRequestNo, asynq.TaskStateCompleted)
	waitState(retry.OutRequestNo, asynq.TaskStateRetry)
	waitState(active.OutRequestNo, asynq.TaskStateActive)

	status := func(queue, no string, args ...string) result {
		got := b.runRaw(testkit.Context(t), nil, append(append([]string{"status", "--queue", queue}, args...), no)...)
		require.NotContains(t, got.stdout+got.stderr, rawOpenID, "no raw openid")
		return got
	}

	tests := []struct {
		name     string
		queue    string
		no       string
		wantJSON map[string]any
		wantText []string // "key value" lines the text must have, however aligned
	}{
		{name: "pending", no: pending.OutRequestNo,
			wantJSON: map[string]any{"state": "pending", "attempts": 0.0, "retried": 0.0, "retry_budget": 20.0},
			wantText: []string{"state pending", "retries 0 of 20 spent", "next_attempt_at "}},
		{name: "scheduled", no: scheduled.OutRequestNo,
			wantJSON: map[string]any{"state": "scheduled", "retried": 0.0, "retry_budget": 20.0},
			wantText: []string{"state scheduled", "next_attempt_at "}},
		{name: "archived, with its dead letter", no: archived.OutRequestNo,
			wantJSON: map[string]any{"state": "archived", "attempts": 1.0, "retried": 0.0, "retry_budget": 20.0},
			wantText: []string{"state archived", "dead_letter dead, permanent http 403 NO_AUTH", "  openid oUpF****0003", "  message refused, NO_AUTH", "  request_id 08F1-000003"}},
		{name: "only a dead letter", no: dead.OutRequestNo,
			wantJSON: map[string]any{"state": "dead", "attempts": nil, "retried": nil},
			wantText: []string{"state dead (only in the dead-letter store: asynq trimmed or deleted its task)", "dead_letter dead, permanent http 404 NOT_FOUND"}},
		{name: "completed", queue: srvQueue, no: completed.OutRequestNo,
			wantJSON: map[string]any{"state": "completed", "attempts": 1.0, "outcome": "imported", "code": "880000000005"},
			wantText: []string{"state completed", "outcome imported", "code 880000000005", "completed_at "}},
		{name: "retry", queue: srvQueue, no: retry.OutRequestNo,
			wantJSON: map[string]any{"state": "retry", "attempts": 1.0, "retried": 1.0, "last_error": "import: wechat pay transient: http 500 SYSTEM_ERROR: 系统错误 [request_id 08F1-6]"},
			wantText: []string{"state retry", "retries 1 of 20 spent", "last_error import: wechat pay transient: http 500 SYSTEM_ERROR", "next_attempt_at "}},
		{name: "active", queue: srvQueue, no: active.OutRequestNo,
			wantJSON: map[string]any{"state": "active", "attempts": 1.0},
			wantText: []string{"state active"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			queue := tt.queue
			if queue == "" {
				queue = b.queue
			}
			got := status(queue, tt.no, "--json")
			require.Equal(t, 0, got.code, got.stderr)
			var rep map[string]any
			require.NoError(t, json.Unmarshal([]byte(got.stdout), &rep))
			require.Equal(t, tt.no, rep["out_request_no"])
			for k, v := range tt.wantJSON {
				require.Equal(t, v, rep[k], "field %s in %s", k, got.stdout)
			}
			_, hasDead := rep["dead_letter"]
			require.Equal(t, tt.no == archived.OutRequestNo || tt.no == dead.OutRequestNo, hasDead)

			got = status(queue, tt.no)
			require.Equal(t, 0, got.code, got.stderr)
			require.Contains(t, got.stdout, "out_request_no")
			for _, line := range tt.wantText {
				key, value, _ := strings.Cut(strings.TrimSpace(line), " ")
				indent := line[:len(line)-len(strings.TrimLeft(line, " "))]
				require.Regexp(t, `(?m)^`+indent+regexp.QuoteMeta(key)+` +`+regexp.QuoteMeta(value), got.stdout)
			}
		})
	}

	t.Run("not found", func(t *testing.T) {
		got := status(b.queue, "1900000001-20261128-999999")
		require.Equal(t, result{code: 1, stderr: "enqueue: status: out_request_no=1900000001-20261128-999999: not found in the queue (never enqueued, or finished longer ago than its retention, 72h by default)\n"}, got)
		got = status(b.redis.Queue(t), "x")
		require.Equal(t, 1, got.code, "a queue that does not exist")
		require.Contains(t, got.stderr, "not found in the queue")
	})
}

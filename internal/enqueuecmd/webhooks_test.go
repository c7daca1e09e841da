package enqueuecmd

import (
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/webhook"
)

// TestWebhooksDeadAndReplay: dead deliveries are listed, their last error
// made safe for a terminal, and put back.
func TestWebhooksDeadAndReplay(t *testing.T) {
	t.Parallel()
	b := setup(t)
	got := b.run(t, nil, "webhooks")
	require.Equal(t, result{code: 0, stdout: "pending=0 retry=0 dead=0 delivered=0\n"}, got)

	client := asynq.NewClient(b.redis.Opt)
	defer client.Close()
	q := webhook.QueueFor(b.queue)
	for _, id := range []string{"outcome-1-0", "run-2-0"} {
		_, err := client.Enqueue(asynq.NewTask(webhook.TypeDeliver, []byte(`{"id":"`+id+`"}`)), asynq.TaskID(id), asynq.Queue(q))
		require.NoError(t, err)
		require.NoError(t, b.insp.ArchiveTask(q, id))
	}
	got = b.run(t, nil, "webhooks")
	require.Equal(t, "pending=0 retry=0 dead=2 delivered=0\n", got.stdout)
	got = b.run(t, nil, "webhooks", "dead")
	require.Equal(t, 0, got.code, got.stderr)
	require.Contains(t, got.stdout, "outcome-1-0")
	require.Contains(t, got.stdout, "run-2-0")
	require.Contains(t, got.stdout, "dead=2\n")

	got = b.run(t, nil, "webhooks", "replay", "run-2-0")
	require.Equal(t, result{code: 0, stdout: "replayed=1\n"}, got)
	got = b.run(t, nil, "webhooks", "replay", "--all")
	require.Equal(t, result{code: 0, stdout: "replayed=1\n"}, got)
	got = b.run(t, nil, "webhooks")
	require.Equal(t, "pending=2 retry=0 dead=0 delivered=0\n", got.stdout)
	got = b.run(t, nil, "webhooks", "replay")
	require.Equal(t, exitUsage, got.code)
}

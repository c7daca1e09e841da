package enqueuecmd

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/tasks"
)

func TestOne(t *testing.T) {
	t.Parallel()
	b := setup(t)
	member := []string{"one", "--card-id", "pLcard0001", "--openid", "oUser0000000001", "--code", "K1", "--out-request-no", "order-1"}

	got := b.run(t, nil, append(member, "--max-retry", "3", "--timeout", "30s", "--retention", "1h")...)
	require.Equal(t, result{code: 0, stdout: "enqueued out_request_no=order-1\n"}, got)
	require.Equal(t, map[string]tasks.Payload{
		"order-1": {CardID: "pLcard0001", OpenID: "oUser0000000001", Code: "K1", OutRequestNo: "order-1"},
	}, b.queued(t))
	info, err := b.insp.GetTaskInfo(b.queue, "order-1")
	require.NoError(t, err)
	require.Equal(t, 3+1, info.MaxRetry, "the budget plus the retry the handler keeps in reserve")
	require.Equal(t, 30*time.Second, info.Timeout)
	require.Equal(t, time.Hour, info.Retention)

	// The same out_request_no again, even for another member, is a
	// duplicate: reported, not an error, and the queue is unchanged.
	got = b.run(t, nil, "one", "--card-id", "pLcard0001", "--openid", "oUser0000000002", "--out-request-no", "order-1")
	require.Equal(t, result{code: 0, stdout: "duplicate out_request_no=order-1\n"}, got)
	require.Equal(t, "oUser0000000001", b.queued(t)["order-1"].OpenID)
}

func TestOneRefusesBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{
			name:       "missing openid",
			args:       []string{"--card-id", "c1", "--out-request-no", "n1"},
			wantStderr: "enqueue: openid: is required\n",
		},
		{
			name:       "bad out_request_no",
			args:       []string{"--card-id", "c1", "--openid", "oUser1", "--out-request-no", "n/1"},
			wantStderr: "enqueue: out_request_no: character '/' at position 2 is not allowed (letters, digits and | _ * - only)\n",
		},
		{
			// A dot-dot card id would make the API path
			// /cards/../users/import.
			name:       "dot-dot card id",
			args:       []string{"--card-id", "..", "--openid", "oUser1", "--out-request-no", "n1"},
			wantStderr: "enqueue: card_id: character '.' at position 1 is not allowed (letters, digits, _ and - only)\n",
		},
		{
			name:       "zero-width character in the openid",
			args:       []string{"--card-id", "c1", "--openid", "oUser\u200b1", "--out-request-no", "n1"},
			wantStderr: "enqueue: openid: character '\\u200b' at position 6 is not allowed (letters, digits, _ and - only)\n",
		},
		{
			name:       "overlong card id",
			args:       []string{"--card-id", strings.Repeat("c", 33), "--openid", "oUser1", "--out-request-no", "n1"},
			wantStderr: "enqueue: card_id: is 33 characters long, at most 32 allowed\n",
		},
		{
			name:       "openid as an argument is not echoed",
			args:       []string{"--card-id", "c1", "--out-request-no", "n1", "oSecretOpenID"},
			wantCode:   1,
			wantStderr: "enqueue: one: takes no arguments, got 1 (give the member with flags)\n",
		},
		{
			name:       "negative max retry",
			args:       []string{"--card-id", "c1", "--openid", "oUser1", "--out-request-no", "n1", "--max-retry", "-1"},
			wantCode:   1,
			wantStderr: "enqueue: --max-retry: must not be negative, got -1\n",
		},
		{
			name:       "zero timeout",
			args:       []string{"--card-id", "c1", "--openid", "oUser1", "--out-request-no", "n1", "--timeout", "0s"},
			wantCode:   1,
			wantStderr: "enqueue: --timeout: must be positive, got 0s\n",
		},
		{
			name:       "timeout too short for a call",
			args:       []string{"--card-id", "c1", "--openid", "oUser1", "--out-request-no", "n1", "--timeout", "16s"},
			wantCode:   1,
			wantStderr: "enqueue: --timeout: must be at least 28s to fit a call to WeChat Pay, got 16s\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			got := b.run(t, nil, append([]string{"one"}, tt.args...)...)
			wantCode := tt.wantCode
			if wantCode == 0 {
				wantCode = 2 // an invalid member
			}
			require.Equal(t, result{code: wantCode, stderr: tt.wantStderr}, got)
			require.Empty(t, b.queued(t))
		})
	}
}

func TestOneRedisUnreachable(t *testing.T) {
	t.Parallel()
	b := &testBundle{queue: "unused", env: map[string]string{"REDIS_URL": unreachableRedis}}
	got := b.run(t, nil, "one", "--card-id", "c1", "--openid", "oUser0000000001", "--out-request-no", "n1")
	require.Equal(t, 1, got.code)
	require.Empty(t, got.stdout)
	require.True(t, strings.HasPrefix(got.stderr, "enqueue: redis: "), got.stderr)
	require.NotContains(t, got.stderr, "oUser0000000001")
}

// unreachableRedis is a Redis URL nothing listens on: port 1 refuses at
// once.
const unreachableRedis = "redis://127.0.0.1:1/0"

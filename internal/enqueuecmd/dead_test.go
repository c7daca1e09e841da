package enqueuecmd

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/internal/importer"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/wechatpay"
	"github.com/cardimport/cardimport/tasks"
)

const deadCard = "pbLatjvWOibDc5-TBnbUk1pD12o0"

// deadMember is member i; every openid starts with rawOpenID so a test can
// check no output carries one.
func deadMember(i int, card string) tasks.Payload {
	return tasks.Payload{CardID: card, OpenID: fmt.Sprintf("%s%05d", rawOpenID, i), OutRequestNo: fmt.Sprintf("1900000001-20261128-%06d", i)}
}

const rawOpenID = "oUpF8uMuAJO_M2pxb"

// dead runs `enqueue dead SUB --queue Q ARGS`.
func (b *testBundle) dead(t *testing.T, sub string, args ...string) result {
	t.Helper()
	got := b.runRaw(testkit.Context(t), nil, append([]string{"dead", sub, "--queue", b.queue}, args...)...)
	require.NotContains(t, got.stdout+got.stderr, rawOpenID, "no raw openid in any output")
	return got
}

func (b *testBundle) store(t *testing.T) *deadletter.Store {
	t.Helper()
	s, err := deadletter.New(b.redis.Opt, b.queue)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// refuse makes p a dead letter as the worker does: enqueued, archived by
// asynq, recorded with WeChat's refusal.
func (b *testBundle) refuse(t *testing.T, s *deadletter.Store, p tasks.Payload, status int, code string, at time.Time) {
	t.Helper()
	task, err := tasks.NewImportTask(p, tasks.WithQueue(b.queue))
	require.NoError(t, err)
	client := asynq.NewClient(b.redis.Opt)
	defer client.Close()
	_, err = client.Enqueue(task)
	require.NoError(t, err)
	require.NoError(t, b.insp.ArchiveTask(b.queue, p.OutRequestNo))
	werr := &wechatpay.Error{Kind: wechatpay.KindPermanent, StatusCode: status, Code: code, Message: "refused, " + code, RequestID: "08F1-" + p.OutRequestNo[20:]}
	err = importer.Refused(werr)
	require.NoError(t, s.Record(testkit.Context(t), deadletter.FromFailure(p.OutRequestNo, task.Payload(), 1, err, at)))
}

func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "line %q", sc.Text())
		out = append(out, m)
	}
	return out
}

func nos(recs []map[string]any) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r["out_request_no"].(string))
	}
	return out
}

func TestDeadList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := b.store(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	old, noAuth, notFound, other := deadMember(1, deadCard), deadMember(2, deadCard), deadMember(3, deadCard), deadMember(4, "pOTHERCARD")
	b.refuse(t, s, old, 403, "NO_AUTH", now.Add(-48*time.Hour))
	b.refuse(t, s, noAuth, 403, "NO_AUTH", now.Add(-3*time.Hour))
	b.refuse(t, s, notFound, 404, "NOT_FOUND", now.Add(-2*time.Hour))
	b.refuse(t, s, other, 400, "INVALID_REQUEST", now.Add(-1*time.Hour))
	// Archived by asynq alone (a lease lost on the last retry): the
	// command's sweep records it before listing.
	lost := deadMember(5, deadCard)
	task, err := tasks.NewImportTask(lost, tasks.WithQueue(b.queue))
	require.NoError(t, err)
	client := asynq.NewClient(b.redis.Opt)
	t.Cleanup(func() { _ = client.Close() })
	_, err = client.Enqueue(task)
	require.NoError(t, err)
	require.NoError(t, b.insp.ArchiveTask(b.queue, lost.OutRequestNo))

	got := b.dead(t, "list", "--json")
	require.Equal(t, 0, got.code, got.stderr)
	require.Equal(t, "listed=5 replayed=0\n", got.stderr)
	recs := jsonLines(t, got.stdout)
	require.Equal(t, []string{old.OutRequestNo, noAuth.OutRequestNo, notFound.OutRequestNo, other.OutRequestNo, lost.OutRequestNo}, nos(recs))
	require.Equal(t, map[string]any{
		"out_request_no": noAuth.OutRequestNo, "card_id": deadCard, "openid_masked": "oUpF****0002",
		"reason": "permanent", "http_status": float64(403), "wechat_code": "NO_AUTH", "message": "refused, NO_AUTH",
		"request_id": "08F1-000002", "attempts": float64(1), "state": "dead", "replays": float64(0),
		"first_failed_at": now.Add(-3 * time.Hour).Format(time.RFC3339Nano), "last_failed_at": now.Add(-3 * time.Hour).Format(time.RFC3339Nano),
	}, recs[1])
	require.Equal(t, "archived_by_asynq", recs[4]["reason"])

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{name: "wechat code", args: []string{"--reason", "no_auth"}, want: []string{old.OutRequestNo, noAuth.OutRequestNo}},
		{name: "reason", args: []string{"--reason", "archived_by_asynq"}, want: []string{lost.OutRequestNo}},
		{name: "card", args: []string{"--card-id", "pOTHERCARD"}, want: []string{other.OutRequestNo}},
		{name: "since a duration", args: []string{"--since", "150m"}, want: []string{notFound.OutRequestNo, other.OutRequestNo, lost.OutRequestNo}},
		{name: "since a time", args: []string{"--since", now.Add(-4 * time.Hour).Format(time.RFC3339), "--reason", "NO_AUTH"}, want: []string{noAuth.OutRequestNo}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := b.dead(t, "list", append([]string{"--json"}, tt.args...)...)
			require.Equal(t, 0, got.code, got.stderr)
			require.Equal(t, tt.want, nos(jsonLines(t, got.stdout)))
			require.Equal(t, fmt.Sprintf("listed=%d replayed=0\n", len(tt.want)), got.stderr)
		})
	}

	t.Run("table", func(t *testing.T) {
		got := b.dead(t, "list", "--reason", "NOT_FOUND")
		require.Equal(t, 0, got.code, got.stderr)
		lines := strings.Split(strings.TrimSuffix(got.stdout, "\n"), "\n")
		require.Len(t, lines, 3)
		require.Regexp(t, `^OUT_REQUEST_NO\s+CARD_ID\s+OPENID\s+REASON\s+HTTP\s+CODE\s+ATTEMPTS\s+LAST_FAILURE\s+STATE\s+MESSAGE$`, lines[0])
		require.Regexp(t, `^1900000001-20261128-000003\s+`+deadCard+`\s+oUpF\*\*\*\*0003\s+permanent\s+404\s+NOT_FOUND\s+1\s+\S+Z\s+dead\s+refused, NOT_FOUND$`, lines[1])
		require.Equal(t, "listed=1 replayed=0", lines[2])
		require.Empty(t, got.stderr)
	})
}

func TestDeadListBadFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{name: "since neither", args: []string{"--since", "yesterday"}, wantStderr: `enqueue: --since: "yesterday" is neither a duration like 24h nor an RFC3339 time like 2026-11-28T00:00:00Z` + "\n"},
		{name: "since negative", args: []string{"--since", "-1h"}, wantStderr: "enqueue: --since: duration must be positive, got -1h\n"},
		{name: "argument", args: []string{"x"}, wantStderr: "enqueue: dead list: takes no arguments, got 1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := &testBundle{queue: "unused", env: map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0"}}
			got := b.dead(t, "list", tt.args...)
			require.Equal(t, 1, got.code)
			require.Equal(t, tt.wantStderr, got.stderr)
			require.Empty(t, got.stdout)
		})
	}
}

func TestDeadReplay(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := b.store(t)
	ctx := testkit.Context(t)
	now := time.Now()
	a, c, d := deadMember(1, deadCard), deadMember(2, deadCard), deadMember(3, deadCard)
	b.refuse(t, s, a, 403, "NO_AUTH", now.Add(-3*time.Hour))
	b.refuse(t, s, c, 404, "NOT_FOUND", now.Add(-2*time.Hour))
	b.refuse(t, s, d, 404, "NOT_FOUND", now.Add(-1*time.Hour))

	states := func() map[string]string {
		out := map[string]string{}
		for _, p := range []tasks.Payload{a, c, d} {
			info, err := b.insp.GetTaskInfo(b.queue, p.OutRequestNo)
			require.NoError(t, err)
			r, err := s.Get(ctx, p.OutRequestNo)
			require.NoError(t, err)
			out[p.OutRequestNo] = info.State.String() + "/" + string(r.State)
		}
		return out
	}
	before := states()

	got := b.dead(t, "replay", "--dry-run", "--all")
	require.Equal(t, result{code: 0, stdout: "would replay=3 skipped=0 failed=0\n"}, got)
	require.Equal(t, before, states(), "a dry run changes nothing")

	got = b.dead(t, "replay", "--reason", "NOT_FOUND", "--max-retry", "3")
	require.Equal(t, result{code: 0, stdout: "replayed=2 skipped=0 failed=0\n"}, got)
	require.Equal(t, map[string]string{
		a.OutRequestNo: "archived/dead",
		c.OutRequestNo: "pending/replayed",
		d.OutRequestNo: "pending/replayed",
	}, states())
	info, err := b.insp.GetTaskInfo(b.queue, c.OutRequestNo)
	require.NoError(t, err)
	require.Equal(t, 0, info.Retried)
	require.Equal(t, 3, tasks.RetryBudget(info.MaxRetry))

	got = b.dead(t, "list")
	require.Equal(t, 0, got.code)
	require.Contains(t, got.stdout, "listed=3 replayed=2\n")

	got = b.dead(t, "replay", "--all")
	require.Equal(t, result{code: 0, stdout: "replayed=1 skipped=2 failed=0\n"}, got, "replays in flight are skipped")

	got = b.dead(t, "replay", a.OutRequestNo, "1900000001-20261128-999999")
	require.Equal(t, 1, got.code)
	require.Equal(t, "replayed=0 skipped=1 failed=1\n", got.stdout)
	require.Equal(t, "enqueue: dead replay: out_request_no=1900000001-20261128-999999: no dead letter\n", got.stderr)
}

func TestDeadReplayInvalidPayload(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := b.store(t)
	bad := deadletter.FromFailure("1900000001-20261128-000001", []byte(`{"card_id":"`+deadCard+`","openid":"`+rawOpenID+`1 "}`), 1,
		fmt.Errorf("payload rejected: %w: %w", &tasks.FieldError{Field: "openid", Problem: "has leading or trailing white space"}, asynq.SkipRetry), time.Now())
	require.NoError(t, s.Record(testkit.Context(t), bad))
	good := deadMember(2, deadCard)
	b.refuse(t, s, good, 403, "NO_AUTH", time.Now())

	got := b.dead(t, "replay", "--all")
	require.Equal(t, 1, got.code)
	require.Equal(t, "replayed=1 skipped=0 failed=1\n", got.stdout, "the valid one is replayed all the same")
	require.Equal(t, "enqueue: dead replay: out_request_no=1900000001-20261128-000001: payload cannot be replayed: openid: has leading or trailing white space\n", got.stderr)
}

// TestDeadReplayRefusesWhatWeChatWouldNot: a dead letter recorded before
// the field rules (or written into Redis by hand) whose card id is a dot
// segment is not put back, since replaying it would send the import to
// another API path.
func TestDeadReplayRefusesWhatWeChatWouldNot(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := b.store(t)
	bad := deadletter.FromFailure("1900000001-20261128-000001", []byte(`{"card_id":"..","openid":"`+rawOpenID+`1","out_request_no":"1900000001-20261128-000001"}`), 1,
		importer.Refused(&wechatpay.Error{Kind: wechatpay.KindPermanent, StatusCode: 404, Code: "NOT_FOUND"}), time.Now())
	require.NoError(t, s.Record(testkit.Context(t), bad))
	got := b.dead(t, "replay", "--all")
	require.Equal(t, 1, got.code)
	require.Equal(t, "replayed=0 skipped=0 failed=1\n", got.stdout)
	require.Equal(t, "enqueue: dead replay: out_request_no=1900000001-20261128-000001: payload cannot be replayed: card_id: character '.' at position 1 is not allowed (letters, digits, _ and - only)\n", got.stderr)
	require.Empty(t, b.queued(t))
}

func TestDeadUsage(t *testing.T) {
	t.Parallel()
	const unreachable = "redis://127.0.0.1:1/0"
	tests := []struct {
		name       string
		env        string // REDIS_URL
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "no subcommand", args: []string{"dead"}, wantCode: 1, wantStderr: "usage: enqueue dead list|replay"},
		{name: "help", args: []string{"dead", "-h"}, wantCode: 0, wantStderr: "never trimmed"},
		{name: "unknown subcommand", args: []string{"dead", "purge"}, wantCode: 1, wantStderr: `enqueue: dead: unknown subcommand "purge" (list or replay)`},
		{name: "replay nothing said", wantStdout: "replayed=0 skipped=0 failed=0\n", args: []string{"dead", "replay"}, wantCode: 1, wantStderr: "enqueue: dead replay: say what to replay: out_request_nos, a filter (--reason, --card-id, --since) or --all"},
		{name: "replay names and all", wantStdout: "replayed=0 skipped=0 failed=0\n", args: []string{"dead", "replay", "--all", "n1"}, wantCode: 1, wantStderr: "enqueue: dead replay: name out_request_nos or select with --all or filters, not both"},
		{name: "replay bad since", wantStdout: "replayed=0 skipped=0 failed=0\n", args: []string{"dead", "replay", "--since", "3 days"}, wantCode: 1, wantStderr: `enqueue: --since: "3 days" is neither a duration`},
		{name: "replay bad option", wantStdout: "replayed=0 skipped=0 failed=0\n", args: []string{"dead", "replay", "--all", "--max-retry", "-1"}, wantCode: 1, wantStderr: "enqueue: --max-retry: must not be negative, got -1"},
		{name: "replay -h", args: []string{"dead", "replay", "-h"}, wantCode: 0, wantStderr: "replayed=N skipped=M failed=K"},
		{name: "status without number", args: []string{"status"}, wantCode: 1, wantStderr: "enqueue: status: want one OUT_REQUEST_NO, got 0 arguments; flags go before it"},
		{name: "dead list without redis", args: []string{"dead", "list"}, wantCode: 1, wantStderr: "enqueue: dead list: REDIS_URL: not set (set it, or pass --redis-url)"},
		{name: "dead list, redis unreachable", env: unreachable, args: []string{"dead", "list"}, wantCode: 1, wantStderr: "enqueue: dead list: redis: dial tcp 127.0.0.1:1: connect: connection refused\n"},
		{name: "dead replay, redis unreachable", env: unreachable, args: []string{"dead", "replay", "--all"}, wantCode: 1, wantStdout: "replayed=0 skipped=0 failed=0\n", wantStderr: "enqueue: dead replay: redis: dial tcp 127.0.0.1:1: connect: connection refused\n"},
		{name: "status, redis unreachable", env: unreachable, args: []string{"status", "n1"}, wantCode: 1, wantStderr: "enqueue: status: redis: dial tcp 127.0.0.1:1: connect: connection refused\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := &testBundle{env: map[string]string{"REDIS_URL": tt.env}}
			got := b.runRaw(testkit.Context(t), nil, tt.args...)
			require.Equal(t, tt.wantCode, got.code)
			require.Equal(t, tt.wantStdout, got.stdout)
			require.Contains(t, got.stderr, tt.wantStderr)
		})
	}
}

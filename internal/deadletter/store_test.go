package deadletter_test

import (
	"context"
	"encoding/json"
	"fmt"
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

const testCard = "pbLatjvWOibDc5-TBnbUk1pD12o0"

// testBundle is a store on a queue of its own, and asynq's view of it.
type testBundle struct {
	r      *testkit.Redis
	queue  string
	store  *deadletter.Store
	client *asynq.Client
	insp   *asynq.Inspector
	ctx    context.Context
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	r := testkit.NewRedis(t)
	b := &testBundle{r: r, queue: r.Queue(t), ctx: testkit.Context(t)}
	var err error
	b.store, err = deadletter.New(r.Opt, b.queue)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.store.Close() })
	b.client = asynq.NewClient(r.Opt)
	t.Cleanup(func() { _ = b.client.Close() })
	b.insp = asynq.NewInspector(r.Opt)
	t.Cleanup(func() { _ = b.insp.Close() })
	return b
}

func payload(i int) tasks.Payload {
	return tasks.Payload{CardID: testCard, OpenID: fmt.Sprintf("oUpF8uMuAJO_M2pxb%06d", i), OutRequestNo: fmt.Sprintf("1900000001-20261128-%06d", i)}
}

func encode(t *testing.T, p tasks.Payload) []byte {
	t.Helper()
	task, err := tasks.NewImportTask(p)
	require.NoError(t, err)
	return task.Payload()
}

// refused is the record of p refused by WeChat with code at time at.
func refused(t *testing.T, p tasks.Payload, status int, code string, at time.Time) deadletter.Record {
	t.Helper()
	err := importer.Refused(&wechatpay.Error{Kind: wechatpay.KindPermanent, StatusCode: status, Code: code, Message: "refused " + code, RequestID: "req-" + p.OutRequestNo})
	return deadletter.FromFailure(p.OutRequestNo, encode(t, p), 1, err, at)
}

// enqueue puts p into the queue and returns the task's ID.
func (b *testBundle) enqueue(t *testing.T, p tasks.Payload, opts ...tasks.Option) {
	t.Helper()
	task, err := tasks.NewImportTask(p, append(opts, tasks.WithQueue(b.queue))...)
	require.NoError(t, err)
	_, err = b.client.Enqueue(task)
	require.NoError(t, err)
}

// list returns the out_request_nos List yields for f.
func (b *testBundle) list(t *testing.T, f deadletter.Filter) []string {
	t.Helper()
	var got []string
	for r, err := range b.store.List(b.ctx, f) {
		require.NoError(t, err)
		got = append(got, r.OutRequestNo)
	}
	return got
}

func TestRecordUpsert(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := payload(1)
	first := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)

	_, err := b.store.Get(b.ctx, p.OutRequestNo)
	require.ErrorIs(t, err, deadletter.ErrNotFound)
	require.NoError(t, b.store.Record(b.ctx, refused(t, p, 403, "NO_AUTH", first)))

	got, err := b.store.Get(b.ctx, p.OutRequestNo)
	require.NoError(t, err)
	require.Equal(t, deadletter.Record{
		OutRequestNo: p.OutRequestNo, CardID: testCard, OpenIDMasked: "oUpF****0001",
		Payload: encode(t, p), Reason: deadletter.ReasonPermanent, HTTPStatus: 403, WeChatCode: "NO_AUTH",
		Message: "refused NO_AUTH", RequestID: "req-" + p.OutRequestNo, Attempts: 1,
		FirstFailedAt: first, LastFailedAt: first, State: deadletter.StateDead,
	}, got)

	// A later failure of the same number: first failure kept, attempts
	// added, the rest is the latest failure's.
	later := first.Add(time.Hour)
	transient := importer.Exhausted(&wechatpay.Error{Kind: wechatpay.KindTransient, StatusCode: 500, Code: "SYSTEM_ERROR", Message: "busy"})
	require.NoError(t, b.store.Record(b.ctx, deadletter.FromFailure(p.OutRequestNo, encode(t, p), 21, transient, later)))
	got, err = b.store.Get(b.ctx, p.OutRequestNo)
	require.NoError(t, err)
	require.Equal(t, first, got.FirstFailedAt)
	require.Equal(t, later, got.LastFailedAt)
	require.Equal(t, 22, got.Attempts)
	require.Equal(t, deadletter.ReasonRetriesExhausted, got.Reason)
	require.Equal(t, "SYSTEM_ERROR", got.WeChatCode)
	require.Empty(t, got.RequestID)

	n, err := b.store.Count(b.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	require.NoError(t, b.store.Remove(b.ctx, p.OutRequestNo))
	require.NoError(t, b.store.Remove(b.ctx, p.OutRequestNo), "removing twice is fine")
	_, err = b.store.Get(b.ctx, p.OutRequestNo)
	require.ErrorIs(t, err, deadletter.ErrNotFound)
	n, err = b.store.Count(b.ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	base := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	recs := []deadletter.Record{
		refused(t, payload(1), 403, "NO_AUTH", base.Add(3*time.Hour)),
		refused(t, payload(2), 400, "INVALID_REQUEST", base.Add(1*time.Hour)),
		refused(t, payload(3), 404, "NOT_FOUND", base.Add(2*time.Hour)),
	}
	other := payload(4)
	other.CardID = "pOTHERCARD"
	recs = append(recs, refused(t, other, 403, "NO_AUTH", base.Add(4*time.Hour)))
	bad := deadletter.FromFailure("1900000001-20261128-000005", []byte(`{"card_id":"x"`), 1,
		fmt.Errorf("payload rejected: %w: %w", tasks.ErrInvalidPayload, asynq.SkipRetry), base)
	recs = append(recs, bad)
	for _, r := range recs {
		require.NoError(t, b.store.Record(b.ctx, r))
	}

	tests := []struct {
		name   string
		filter deadletter.Filter
		want   []string
	}{
		{name: "all, oldest failure first", want: []string{bad.OutRequestNo, recs[1].OutRequestNo, recs[2].OutRequestNo, recs[0].OutRequestNo, recs[3].OutRequestNo}},
		{name: "wechat code, any case", filter: deadletter.Filter{Reason: "no_auth"}, want: []string{recs[0].OutRequestNo, recs[3].OutRequestNo}},
		{name: "reason", filter: deadletter.Filter{Reason: "invalid_payload"}, want: []string{bad.OutRequestNo}},
		{name: "card", filter: deadletter.Filter{CardID: "pOTHERCARD"}, want: []string{recs[3].OutRequestNo}},
		{name: "since, inclusive", filter: deadletter.Filter{Since: base.Add(2 * time.Hour)}, want: []string{recs[2].OutRequestNo, recs[0].OutRequestNo, recs[3].OutRequestNo}},
		{name: "all filters", filter: deadletter.Filter{Reason: "NO_AUTH", CardID: testCard, Since: base.Add(time.Hour)}, want: []string{recs[0].OutRequestNo}},
		{name: "nothing matches", filter: deadletter.Filter{Reason: "SYSTEM_ERROR"}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, b.list(t, tt.filter))
		})
	}
}

// TestListPagesWhileRecordsGo lists several pages' worth of records, many
// sharing one failure time, while imports succeed and remove records under
// it: every record present throughout is listed exactly once.
func TestListPagesWhileRecordsGo(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 1600
	at := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	for i := range n {
		// Runs of 300 records share a millisecond, so pages start inside
		// a tie.
		require.NoError(t, b.store.Record(b.ctx, refused(t, payload(i), 403, "NO_AUTH", at.Add(time.Duration(i/300)*time.Millisecond))))
	}

	seen := map[string]int{}
	removed := map[string]bool{}
	i := 0
	for r, err := range b.store.List(b.ctx, deadletter.Filter{}) {
		require.NoError(t, err)
		seen[r.OutRequestNo]++
		i++
		// Remove the record just listed (the cursor's own member) and
		// one far ahead, as succeeding replays do.
		if i%50 == 0 { // 500, 1000 and 1500 end pages
			require.NoError(t, b.store.Remove(b.ctx, r.OutRequestNo))
			ahead := payload((i*13 + 1) % n).OutRequestNo
			if seen[ahead] == 0 {
				removed[ahead] = true
				require.NoError(t, b.store.Remove(b.ctx, ahead))
			}
		}
	}
	require.NotEmpty(t, removed)
	for i := range n {
		no := payload(i).OutRequestNo
		if removed[no] {
			// Removed while its page was already read: it may appear.
			require.LessOrEqual(t, seen[no], 1, "%s listed at most once", no)
			continue
		}
		require.Equal(t, 1, seen[no], "%s listed once", no)
	}
}

func TestFromArchived(t *testing.T) {
	t.Parallel()
	p := payload(7)
	at := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	// The handler writes how a task it failed for good ended as the
	// task's result; the sweep reads that, never the error's text.
	refused := &wechatpay.Error{Kind: wechatpay.KindPermanent, StatusCode: 403, Code: "NO_AUTH", Message: "商户无权限", RequestID: "08F1-42"}
	exhausted := &wechatpay.Error{Kind: wechatpay.KindTransient, StatusCode: 500, Code: "SYSTEM_ERROR", Message: "系统错误"}
	tests := []struct {
		name    string
		lastErr string
		result  error
		want    deadletter.Record
	}{
		{
			name:    "refusal",
			lastErr: "import refused: whatever the text says",
			result:  importer.Refused(refused),
			want:    deadletter.Record{Reason: deadletter.ReasonPermanent, HTTPStatus: 403, WeChatCode: "NO_AUTH", Message: "商户无权限", RequestID: "08F1-42"},
		},
		{
			name:    "retries exhausted",
			lastErr: "import: retries exhausted: whatever the text says",
			result:  importer.Exhausted(exhausted),
			want:    deadletter.Record{Reason: deadletter.ReasonRetriesExhausted, HTTPStatus: 500, WeChatCode: "SYSTEM_ERROR", Message: "系统错误"},
		},
		{
			name:    "refusal text without a result is not parsed",
			lastErr: "import refused: wechat pay permanent: http 403 NO_AUTH: 商户无权限 [request_id 08F1-42]: skip retry for the task",
			want:    deadletter.Record{Reason: deadletter.ReasonArchivedByAsynq, Message: "import refused: wechat pay permanent: http 403 NO_AUTH: 商户无权限 [request_id 08F1-42]"},
		},
		{
			name:    "lease expired on the last retry",
			lastErr: "asynq: task lease expired",
			want:    deadletter.Record{Reason: deadletter.ReasonArchivedByAsynq, Message: "asynq: task lease expired"},
		},
		{
			name:    "archived by an operator",
			lastErr: "",
			want:    deadletter.Record{Reason: deadletter.ReasonArchivedByAsynq, Message: "archived without an error (an operator's archive?)"},
		},
		{
			name:    "openid in an error is masked",
			lastErr: "boom " + p.OpenID,
			want:    deadletter.Record{Reason: deadletter.ReasonArchivedByAsynq, Message: "boom oUpF****0007"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			info := &asynq.TaskInfo{ID: p.OutRequestNo, Payload: encode(t, p), LastErr: tt.lastErr, LastFailedAt: at, Retried: 2}
			if tt.result != nil {
				data, err := json.Marshal(importer.FailureResult(tt.result))
				require.NoError(t, err)
				info.Result = data
			}
			got := deadletter.FromArchived(info)
			want := tt.want
			want.OutRequestNo, want.CardID, want.OpenIDMasked, want.Payload = p.OutRequestNo, p.CardID, "oUpF****0007", encode(t, p)
			want.Attempts, want.FirstFailedAt, want.LastFailedAt, want.State = 3, at, at, deadletter.StateDead
			require.Equal(t, want, got)
		})
	}
}

// TestSettle: a replayed member's import succeeds through a server
// whose handler settles its result with Settle: asynq shows the task
// completed with that result, the member's record is gone, and another
// member's record stays.
func TestSettle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p, other := payload(1), payload(2)
	for _, m := range []tasks.Payload{p, other} {
		require.NoError(t, b.store.Record(b.ctx, refused(t, m, 403, "NO_AUTH", time.Now())))
	}
	b.serve(t, func(ctx context.Context, _ *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		return b.store.Settle(ctx, id, p, tasks.Result{Outcome: tasks.OutcomeImported, Code: "CARDCODE-1"})
	})
	b.enqueue(t, p)
	info := b.waitState(t, p.OutRequestNo, asynq.TaskStateCompleted)
	require.JSONEq(t, `{"outcome":"imported","code":"CARDCODE-1"}`, string(info.Result), "asynq reads the result where Settle put it")
	_, err := b.store.Get(b.ctx, p.OutRequestNo)
	require.ErrorIs(t, err, deadletter.ErrNotFound)
	_, err = b.store.Get(b.ctx, other.OutRequestNo)
	require.NoError(t, err)
	n, err := b.store.Count(b.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	// A Redis that does not answer: the error says what was not done.
	down, err := deadletter.New(asynq.RedisClientOpt{Addr: "127.0.0.1:1"}, b.queue)
	require.NoError(t, err)
	defer down.Close()
	require.ErrorContains(t, down.Settle(b.ctx, other.OutRequestNo, other, tasks.Result{Outcome: tasks.OutcomeImported, Code: "C"}), "dead letters: settle: ")
}

// TestSettleNeedsTheTask: a result without a task ID, or for a task
// of another queue, is refused, and nothing is written.
func TestSettleNeedsTheTask(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := payload(1)
	require.NoError(t, b.store.Record(b.ctx, refused(t, p, 403, "NO_AUTH", time.Now())))
	require.EqualError(t, b.store.Settle(b.ctx, "", p, tasks.Result{Outcome: tasks.OutcomeImported}), "dead letters: result without a task ID")
	other := b.r.Queue(t)
	srv := asynq.NewServer(b.r.Opt, asynq.Config{Queues: map[string]int{other: 1}, Concurrency: 1, LogLevel: asynq.FatalLevel})
	errs := make(chan error, 1)
	require.NoError(t, srv.Start(asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		errs <- b.store.Settle(ctx, id, p, tasks.Result{Outcome: tasks.OutcomeImported})
		return nil
	})))
	defer srv.Shutdown()
	task, err := tasks.NewImportTask(p, tasks.WithQueue(other))
	require.NoError(t, err)
	_, err = b.client.Enqueue(task)
	require.NoError(t, err)
	select {
	case err := <-errs:
		require.EqualError(t, err, fmt.Sprintf("dead letters: result of a task of queue %q, the store is of %q", other, b.queue))
	case <-time.After(10 * time.Second):
		t.Fatal("the task of the other queue was not processed")
	}
	_, err = b.store.Get(b.ctx, p.OutRequestNo)
	require.NoError(t, err, "the record stays")
}

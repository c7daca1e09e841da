package importer_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/config"
	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/internal/importer"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/wechatpay"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
	"github.com/cardimport/cardimport/internal/worker"
	"github.com/cardimport/cardimport/tasks"
)

const testCard = "pbLatjvWOibDc5-TBnbUk1pD12o0"

// testBundle is one worker on its own queue, against its own emulator.
type testBundle struct {
	srv    *wechatpaytest.Server
	client *asynq.Client
	insp   *asynq.Inspector
	queue  string
	logs   *testkit.Buffer
}

type setupOpts struct {
	emulator []wechatpaytest.Option
	// mchKey replaces the merchant key the worker signs with.
	mchKey *rsa.PrivateKey
	// wrap, if set, stands between the handler and the WeChat Pay client.
	wrap func(importer.Importer) importer.Importer
	// results, if set, makes the handler's ResultStore from the test's
	// Redis and queue.
	results func(r *testkit.Redis, queue string) importer.ResultStore
}

func setup(t *testing.T, o setupOpts) *testBundle {
	t.Helper()
	r := testkit.NewRedis(t)
	b := &testBundle{queue: r.Queue(t), logs: &testkit.Buffer{}}
	b.srv = wechatpaytest.NewServer(wechatpaytest.TestKeys(t), o.emulator...)
	t.Cleanup(b.srv.Close)

	wcfg := b.srv.ClientConfig(wechatpay.ModePublicKey)
	if o.mchKey != nil {
		wcfg.MchPrivateKey = o.mchKey
	}
	wc, err := wechatpay.NewClient(context.Background(), wcfg)
	require.NoError(t, err)
	t.Cleanup(wc.Close)

	log := zerolog.New(b.logs)
	var imp importer.Importer = wc
	if o.wrap != nil {
		imp = o.wrap(wc)
	}
	hcfg := importer.HandlerConfig{Importer: imp, Logger: &log}
	if o.results != nil {
		hcfg.Results = o.results(r, b.queue)
	}
	h, err := importer.NewHandler(hcfg)
	require.NoError(t, err)
	srv := worker.NewServer(config.Worker{
		Redis: r.Opt, Queue: b.queue, Concurrency: 4,
		RetryMinDelay: 10 * time.Millisecond, RetryMaxDelay: 50 * time.Millisecond,
		ShutdownTimeout: 5 * time.Second,
	}, log)
	mux := asynq.NewServeMux()
	mux.Handle(tasks.TypeImport, h)
	require.NoError(t, srv.Start(mux))
	t.Cleanup(srv.Shutdown)

	b.client = asynq.NewClient(r.Opt)
	t.Cleanup(func() { _ = b.client.Close() })
	b.insp = asynq.NewInspector(r.Opt)
	t.Cleanup(func() { _ = b.insp.Close() })
	t.Cleanup(func() {
		// Whatever happened, no log line may carry an openid.
		require.NotContains(t, b.logs.String(), "oUpF8u")
		require.NotContains(t, b.logs.String(), wechatpaytest.OpenIDPrefixNoTrade)
	})
	return b
}

var seq atomic.Int64

func member(openid string) tasks.Payload {
	return tasks.Payload{CardID: testCard, OpenID: openid, OutRequestNo: fmt.Sprintf("1900000001-20261128-%06d", seq.Add(1))}
}

func (b *testBundle) enqueue(t *testing.T, p tasks.Payload, opts ...tasks.Option) {
	t.Helper()
	task, err := tasks.NewImportTask(p, append([]tasks.Option{tasks.WithQueue(b.queue)}, opts...)...)
	require.NoError(t, err)
	_, err = b.client.Enqueue(task)
	require.NoError(t, err)
}

// waitState polls the task until it reaches state, as an operator's
// `enqueue status` would, and fails after 20 s.
func (b *testBundle) waitState(t *testing.T, id string, state asynq.TaskState) *asynq.TaskInfo {
	t.Helper()
	return testkit.WaitState(t, b.insp, b.queue, id, state, 20*time.Second)
}

func result(t *testing.T, info *asynq.TaskInfo) tasks.Result {
	t.Helper()
	r, err := tasks.DecodeResult(info.Result)
	require.NoError(t, err)
	return r
}

func TestHandlerImports(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	p := member("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
	b.enqueue(t, p)
	info := b.waitState(t, p.OutRequestNo, asynq.TaskStateCompleted)
	r := result(t, info)
	require.Equal(t, tasks.OutcomeImported, r.Outcome)
	require.Regexp(t, `^[0-9]{12}$`, r.Code)
	require.Equal(t, 0, info.Retried)
	require.Equal(t, 1, b.srv.ImportCount(testCard, p.OpenID))
	require.Contains(t, b.logs.String(), `"outcome":"imported"`)
}

func TestHandlerRetriesUnderTheSameOutRequestNo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		fault       func(e *wechatpaytest.Server)
		wantRetried int
		wantReplays int
	}{
		// A replay can only happen when the retry sends the number WeChat
		// has already seen: Replays == 1 proves the same out_request_no.
		{name: "lost answer then retry", fault: func(s *wechatpaytest.Server) { s.LoseNextAnswers(1) }, wantRetried: 1, wantReplays: 1},
		{name: "forged answer then retry", fault: func(s *wechatpaytest.Server) { s.ForgeNext(1) }, wantRetried: 1, wantReplays: 1},
		{name: "two system errors", fault: func(s *wechatpaytest.Server) { s.FailNext(2, 500, "SYSTEM_ERROR", "系统错误") }, wantRetried: 2},
		{name: "503 then 202", fault: func(s *wechatpaytest.Server) {
			s.FailNext(1, 503, "SERVICE_UNAVAILABLE", "服务不可用")
			s.Accept202Next(1)
		}, wantRetried: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{})
			tt.fault(b.srv)
			p := member("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
			b.enqueue(t, p)
			info := b.waitState(t, p.OutRequestNo, asynq.TaskStateCompleted)
			require.Equal(t, tasks.OutcomeImported, result(t, info).Outcome)
			require.Equal(t, tt.wantRetried, info.Retried)
			require.Equal(t, 1, b.srv.ImportCount(testCard, p.OpenID), "imported exactly once")
			require.Equal(t, tt.wantReplays, b.srv.Stats().Replays)
		})
	}
}

func TestHandlerRateLimitDoesNotSpendRetries(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.srv.FailNext(2, 429, "RATELIMIT_EXCEEDED", "频率超限")
	p := member("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
	// A budget of zero: had a 429 counted, the task would be archived.
	b.enqueue(t, p, tasks.WithMaxRetry(0))
	info := b.waitState(t, p.OutRequestNo, asynq.TaskStateCompleted)
	require.Equal(t, 0, info.Retried)
	require.Equal(t, 2, b.srv.Stats().Refusals["RATELIMIT_EXCEEDED"])
}

func TestHandlerArchivesPermanentRefusalWithReason(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	p := member(wechatpaytest.OpenIDPrefixNoTrade + "oUpF8uMuAJO")
	b.enqueue(t, p)
	info := b.waitState(t, p.OutRequestNo, asynq.TaskStateArchived)
	require.Equal(t, 0, info.Retried, "archived at once, not retried")
	require.Contains(t, info.LastErr, "http 400 INVALID_REQUEST: "+wechatpaytest.MessageNoTrade)
	require.Regexp(t, `\[request_id [^\]]+\]`, info.LastErr)
	require.NotContains(t, info.LastErr, p.OpenID)
	require.Equal(t, 0, b.srv.Stats().Imports)
	// The dead outcome stays with the task, typed, from WeChat's answer.
	res := result(t, info)
	require.Equal(t, tasks.OutcomeDead, res.Outcome)
	require.Equal(t, tasks.ReasonPermanent, res.Reason)
	require.Equal(t, 400, res.HTTPStatus)
	require.Equal(t, "INVALID_REQUEST", res.WeChatCode)
	require.Equal(t, wechatpaytest.MessageNoTrade, res.Message)
	require.Equal(t, 1, b.srv.Stats().Lists, "WeChat's list was asked before the refusal stood")
}

func TestHandlerArchivesWhenRetriesRunOut(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.srv.FailNext(10, 503, "SERVICE_UNAVAILABLE", "服务不可用")
	p := member("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
	b.enqueue(t, p, tasks.WithMaxRetry(2))
	info := b.waitState(t, p.OutRequestNo, asynq.TaskStateArchived)
	require.Equal(t, 2, info.Retried)
	require.Contains(t, info.LastErr, "retries exhausted: wechat pay transient: http 503 SERVICE_UNAVAILABLE")
	require.Contains(t, b.logs.String(), `"message":"import failed, retries exhausted"`)
}

func TestHandlerCompletesAlreadyMember(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	p := member("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
	code := b.srv.Seed(testCard, p.OpenID)
	b.enqueue(t, p)
	info := b.waitState(t, p.OutRequestNo, asynq.TaskStateCompleted)
	require.Equal(t, tasks.Result{Outcome: tasks.OutcomeAlreadyMember, Code: code}, result(t, info))
	require.Equal(t, 0, info.Retried)
	require.Equal(t, 0, b.srv.Stats().Imports)
}

// TestAlreadyMemberNeedsWeChatsList: only WeChat's list of the member's
// cards makes a refused member an already-member, whatever the refusal's
// message says; a list that fails leaves the member to a retry.
func TestAlreadyMemberNeedsWeChatsList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// prepare sets WeChat up for p, and returns the code p should end
		// with ("" when p should end dead).
		prepare   func(b *testBundle, p tasks.Payload) string
		wantState asynq.TaskState
		want      tasks.Outcome
		wantRetry int
	}{
		{name: "holder of 25 cards: the list is paged", prepare: func(b *testBundle, p tasks.Payload) string {
			var others []string
			for i := range 24 {
				others = append(others, fmt.Sprintf("pOtherCard%02d", i))
			}
			b.srv.SeedCards(p.OpenID, others...)
			return b.srv.Seed(testCard, p.OpenID)
		}, wantState: asynq.TaskStateCompleted, want: tasks.OutcomeAlreadyMember},
		{name: "already-member message, card not listed: dead", prepare: func(b *testBundle, p tasks.Payload) string {
			b.srv.FailNext(1, 400, "INVALID_REQUEST", wechatpaytest.MessageAlreadyMember)
			return ""
		}, wantState: asynq.TaskStateArchived, want: tasks.OutcomeDead},
		{name: "other message, card listed: already member", prepare: func(b *testBundle, p tasks.Payload) string {
			code := b.srv.Seed(testCard, p.OpenID)
			b.srv.FailNext(1, 400, "INVALID_REQUEST", "card not already claimed by x")
			return code
		}, wantState: asynq.TaskStateCompleted, want: tasks.OutcomeAlreadyMember},
		{name: "list refused: retried, then settled", prepare: func(b *testBundle, p tasks.Payload) string {
			b.srv.FailNextList(1, 500, "SYSTEM_ERROR", "系统错误")
			return b.srv.Seed(testCard, p.OpenID)
		}, wantState: asynq.TaskStateCompleted, want: tasks.OutcomeAlreadyMember, wantRetry: 1},
		{name: "list not signed: retried, then settled", prepare: func(b *testBundle, p tasks.Payload) string {
			b.srv.ForgeNextList(1)
			return b.srv.Seed(testCard, p.OpenID)
		}, wantState: asynq.TaskStateCompleted, want: tasks.OutcomeAlreadyMember, wantRetry: 1},
		{name: "forged already-member refusal: retried, then imported", prepare: func(b *testBundle, p tasks.Payload) string {
			b.srv.ForgeRefusalFor(p.OutRequestNo, 400, "INVALID_REQUEST", wechatpaytest.MessageAlreadyMember)
			return "imported"
		}, wantState: asynq.TaskStateCompleted, want: tasks.OutcomeImported, wantRetry: 1},
		{name: "forged 404: retried, then imported", prepare: func(b *testBundle, p tasks.Payload) string {
			b.srv.ForgeRefusalFor(p.OutRequestNo, 404, "NOT_FOUND", "资源不存在")
			return "imported"
		}, wantState: asynq.TaskStateCompleted, want: tasks.OutcomeImported, wantRetry: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{})
			p := member(fmt.Sprintf("oUpF8uMuAJO_Holder%06d", seq.Add(1)))
			code := tt.prepare(b, p)
			b.enqueue(t, p)
			info := b.waitState(t, p.OutRequestNo, tt.wantState)
			require.Equal(t, tt.wantRetry, info.Retried)
			res := result(t, info)
			require.Equal(t, tt.want, res.Outcome)
			switch tt.want {
			case tasks.OutcomeAlreadyMember:
				require.Equal(t, code, res.Code, "the code WeChat lists")
				require.Zero(t, b.srv.ImportCount(testCard, p.OpenID))
			case tasks.OutcomeImported:
				held, ok := b.srv.HeldCode(testCard, p.OpenID)
				require.True(t, ok)
				require.Equal(t, held, res.Code)
				require.Equal(t, 1, b.srv.ImportCount(testCard, p.OpenID))
			case tasks.OutcomeDead:
				require.Equal(t, tasks.ReasonPermanent, res.Reason)
				require.Equal(t, "INVALID_REQUEST", res.WeChatCode)
			}
		})
	}
}

// TestTaskIDMustBeTheOutRequestNo: a task whose asynq ID differs from its
// payload's out_request_no is archived as an invalid payload, and WeChat
// sees nothing.
func TestTaskIDMustBeTheOutRequestNo(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	p := member("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
	data, err := json.Marshal(p)
	require.NoError(t, err)
	_, err = b.client.Enqueue(asynq.NewTask(tasks.TypeImport, data, asynq.TaskID("another-number-0001"), asynq.Queue(b.queue), asynq.MaxRetry(5)))
	require.NoError(t, err)
	info := b.waitState(t, "another-number-0001", asynq.TaskStateArchived)
	require.Equal(t, 0, info.Retried)
	require.Contains(t, info.LastErr, "task id is not the payload's out_request_no")
	res := result(t, info)
	require.Equal(t, tasks.ReasonInvalidPayload, res.Reason)
	require.Zero(t, b.srv.Stats().Requests, "nothing reached WeChat")
}

// failingResults fails the first write of each task, as a Redis that went
// away between the import and its result would, then stores results in the
// dead-letter store, as the worker does.
type failingResults struct {
	store  *deadletter.Store
	failed sync.Map
}

func (f *failingResults) Settle(ctx context.Context, taskID string, p tasks.Payload, r tasks.Result) error {
	if _, again := f.failed.LoadOrStore(taskID, true); !again {
		return errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
	}
	return f.store.Settle(ctx, taskID, p, r)
}

// TestHandlerRetriesAResultRedisDidNotTake: an import whose result Redis
// does not take is retried under the same out_request_no without spending
// its budget, and completes with WeChat's first answer; the member is
// imported once, and the member's dead letter goes with the result.
func TestHandlerRetriesAResultRedisDidNotTake(t *testing.T) {
	t.Parallel()
	var store *deadletter.Store
	b := setup(t, setupOpts{results: func(r *testkit.Redis, queue string) importer.ResultStore {
		var err error
		store, err = deadletter.New(r.Opt, queue)
		require.NoError(t, err)
		t.Cleanup(func() { _ = store.Close() })
		return &failingResults{store: store}
	}})
	p := member("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
	ctx := testkit.Context(t)
	require.NoError(t, store.Record(ctx, deadletter.FromFailure(p.OutRequestNo, []byte(`{}`), 1, errors.New("earlier failure"), time.Now())))
	b.enqueue(t, p)
	info := b.waitState(t, p.OutRequestNo, asynq.TaskStateCompleted)
	r := result(t, info)
	require.Equal(t, tasks.OutcomeImported, r.Outcome)
	require.Regexp(t, `^[0-9]{12}$`, r.Code)
	require.Equal(t, 0, info.Retried, "no retry spent")
	require.Equal(t, 1, b.srv.ImportCount(testCard, p.OpenID))
	require.Equal(t, 2, b.srv.Stats().Requests, "called twice under one out_request_no")
	require.Contains(t, b.logs.String(), `"message":"result not written, will retry"`)
	_, err := store.Get(ctx, p.OutRequestNo)
	require.ErrorIs(t, err, deadletter.ErrNotFound)
}

func TestTaskOptionsReachTheQueue(t *testing.T) {
	t.Parallel()
	r := testkit.NewRedis(t)
	client := asynq.NewClient(r.Opt)
	t.Cleanup(func() { _ = client.Close() })
	tests := []struct {
		name          string
		opts          func(q string) []tasks.Option
		wantMaxRetry  int
		wantTimeout   time.Duration
		wantRetention time.Duration
	}{
		// asynq's MaxRetry is the budget plus the one retry the handler
		// keeps in reserve (see NewImportTask).
		{name: "defaults", opts: func(q string) []tasks.Option { return []tasks.Option{tasks.WithQueue(q)} },
			wantMaxRetry: tasks.DefaultMaxRetry + 1, wantTimeout: time.Minute, wantRetention: 72 * time.Hour},
		{name: "custom", opts: func(q string) []tasks.Option {
			return []tasks.Option{tasks.WithQueue(q), tasks.WithMaxRetry(3), tasks.WithTimeout(tasks.MinTimeout), tasks.WithRetention(time.Hour)}
		}, wantMaxRetry: 4, wantTimeout: tasks.MinTimeout, wantRetention: time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := r.Queue(t)
			p := member("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
			task, err := tasks.NewImportTask(p, tt.opts(q)...)
			require.NoError(t, err)
			info, err := client.Enqueue(task)
			require.NoError(t, err)
			require.Equal(t, p.OutRequestNo, info.ID)
			require.Equal(t, q, info.Queue)
			require.Equal(t, tt.wantMaxRetry, info.MaxRetry)
			require.Equal(t, tt.wantTimeout, info.Timeout)
			require.Equal(t, tt.wantRetention, info.Retention)
		})
	}
	t.Run("default queue", func(t *testing.T) {
		// A Redis of its own, so the check does not put a task into the
		// shared server's real "membercard" queue.
		m := miniredis.RunT(t)
		c := asynq.NewClient(asynq.RedisClientOpt{Addr: m.Addr()})
		defer c.Close()
		task, err := tasks.NewImportTask(member("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"))
		require.NoError(t, err)
		info, err := c.Enqueue(task)
		require.NoError(t, err)
		require.Equal(t, "membercard", info.Queue)
	})
}

func TestDuplicateEnqueueIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	p := member("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
	b.enqueue(t, p)
	task, err := tasks.NewImportTask(p, tasks.WithQueue(b.queue))
	require.NoError(t, err)
	_, err = b.client.Enqueue(task)
	require.ErrorIs(t, err, asynq.ErrTaskIDConflict, "queued twice")
	b.waitState(t, p.OutRequestNo, asynq.TaskStateCompleted)
	_, err = b.client.Enqueue(task)
	require.ErrorIs(t, err, asynq.ErrTaskIDConflict, "finished within retention")
	require.Equal(t, 1, b.srv.Stats().Requests)
}

func TestSignErrorArchivesNothing(t *testing.T) {
	t.Parallel()
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	b := setup(t, setupOpts{mchKey: other})
	var ids []string
	for i := 0; i < 5; i++ {
		p := member(fmt.Sprintf("oUpF8uMuAJO_M2pxb1Q9zNjW%04d", i))
		// A budget of zero: had the SIGN_ERROR counted, or had asynq's
		// last-attempt rule applied, the task would be archived.
		b.enqueue(t, p, tasks.WithMaxRetry(0))
		ids = append(ids, p.OutRequestNo)
	}
	for _, id := range ids {
		info := b.waitState(t, id, asynq.TaskStateRetry)
		require.Equal(t, 0, info.Retried, "no retry spent")
		require.Contains(t, info.LastErr, "http 401 SIGN_ERROR")
		// Bring the retry forward instead of waiting the systemic delay:
		// the second SIGN_ERROR must not archive either.
		require.NoError(t, b.insp.RunTask(b.queue, id))
	}
	for _, id := range ids {
		require.Eventually(t, func() bool {
			info, err := b.insp.GetTaskInfo(b.queue, id)
			return err == nil && info.State == asynq.TaskStateRetry && strings.Contains(b.logs.String(), id)
		}, 20*time.Second, 20*time.Millisecond)
	}
	require.GreaterOrEqual(t, b.srv.Stats().Refusals["SIGN_ERROR"], 2*len(ids), "each task tried twice")
	q, err := b.insp.GetQueueInfo(b.queue)
	require.NoError(t, err)
	require.Equal(t, 0, q.Archived)
	logs := b.logs.String()
	require.Contains(t, logs, `"level":"error"`)
	require.Contains(t, logs, "wechat pay refuses our signature")
	require.Contains(t, logs, "hint: check WECHATPAY_MCH_PRIVATE_KEY_FILE")
}

func TestPoisonPayloadIsArchivedAndTheQueueGoesOn(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	tests := []struct {
		name    string
		payload string
		want    string
	}{
		{name: "not json", payload: "{oops", want: "payload rejected: invalid payload: not a JSON import payload"},
		{name: "invalid member", payload: `{"card_id":"` + testCard + `","openid":"","out_request_no":"x1"}`, want: "payload rejected: openid: is required"},
	}
	for i, tt := range tests {
		id := fmt.Sprintf("poison-%d", i)
		_, err := b.client.Enqueue(asynq.NewTask(tasks.TypeImport, []byte(tt.payload)), asynq.Queue(b.queue), asynq.TaskID(id))
		require.NoError(t, err)
		info := b.waitState(t, id, asynq.TaskStateArchived)
		require.Contains(t, info.LastErr, tt.want, tt.name)
		require.Equal(t, 0, info.Retried)
	}
	p := member("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
	b.enqueue(t, p)
	b.waitState(t, p.OutRequestNo, asynq.TaskStateCompleted)
}

// ignoreDeadline is an importer that does not heed its context's deadline:
// it calls WeChat with a context that ends only when the test does.
type ignoreDeadline struct {
	next importer.Importer
	ctx  context.Context
}

func (i ignoreDeadline) Import(_ context.Context, req wechatpay.ImportRequest) (wechatpay.ImportResult, error) {
	return i.next.Import(i.ctx, req)
}

func (i ignoreDeadline) ListCards(_ context.Context, req wechatpay.ListCardsRequest) (wechatpay.CardPage, error) {
	return i.next.ListCards(i.ctx, req)
}

// TestAttemptTimeoutSpendsOnlyTheBudget: an attempt whose call to WeChat
// outlasts the task's timeout fails as a counted transient fault, and the
// last budgeted one archives the task as retries exhausted. Had asynq's own
// deadline ended the attempt, asynq would have counted a retry past the
// budget, into the retry kept in reserve, and the task would have spent it
// (Retried 2, last error "context deadline exceeded").
func TestAttemptTimeoutSpendsOnlyTheBudget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		wrap func(t *testing.T) func(importer.Importer) importer.Importer
	}{
		{name: "importer heeds its deadline"},
		{name: "importer ignores its deadline", wrap: func(t *testing.T) func(importer.Importer) importer.Importer {
			return func(next importer.Importer) importer.Importer {
				ctx, cancel := context.WithCancel(context.Background())
				t.Cleanup(cancel) // before the emulator closes: hangs up
				return ignoreDeadline{next: next, ctx: ctx}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := setupOpts{}
			if tt.wrap != nil {
				o.wrap = tt.wrap(t)
			}
			b := setup(t, o)
			// WeChat hangs: every call lasts past the attempt's timeout.
			b.srv.SetLatency(time.Minute)
			p := member("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
			data, err := json.Marshal(p)
			require.NoError(t, err)
			// A budget of one retry. The timeout is below MinTimeout, which
			// NewImportTask refuses, to keep the test short: the handler's
			// margin shrinks with it.
			_, err = b.client.Enqueue(asynq.NewTask(tasks.TypeImport, data), asynq.Queue(b.queue), asynq.TaskID(p.OutRequestNo),
				asynq.MaxRetry(1+1), asynq.Timeout(6*time.Second))
			require.NoError(t, err)
			info := testkit.WaitState(t, b.insp, b.queue, p.OutRequestNo, asynq.TaskStateArchived, time.Minute)
			require.Equal(t, 1, info.Retried, "the budget, not the reserve")
			// The handler's error, not asynq's bare "context deadline exceeded".
			require.Contains(t, info.LastErr, "import: retries exhausted:")
			logs := b.logs.String()
			require.Equal(t, 1, strings.Count(logs, `"message":"import failed, will retry"`), logs)
			require.Equal(t, 1, strings.Count(logs, `"message":"import failed, retries exhausted"`), logs)
		})
	}
}

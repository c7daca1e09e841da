package dashboard_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/dashboard"
	"github.com/cardimport/cardimport/internal/redisconn"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
	"github.com/cardimport/cardimport/internal/worker"
	"github.com/cardimport/cardimport/results"
	"github.com/cardimport/cardimport/tasks"
)

const runsCard = "pbLatjvWOibDc5-TBnbUk1pD12o0"

// nightRun is what a night's import leaves in Redis: one run of members
// imported through a real worker into the WeChat Pay emulator, settled,
// with the worker stopped so that nothing takes a replayed member off the
// queue.
type nightRun struct {
	r      *testkit.Redis
	queue  string
	run    results.Run
	insp   *asynq.Inspector
	rs     *results.Store
	member map[string]tasks.Payload // by out_request_no, every member handed over
	// refused holds the out_request_nos WeChat refused, by its code.
	refused map[string][]string
}

// The run's members and what WeChat answers each.
const (
	nightImported      = 12
	nightAlreadyMember = 2
	nightNoAuth        = 3
	nightNoTrade       = 2
	nightNotFound      = 1
	nightNamed         = 1 // PARAM_ERROR, its message naming the member's openid
	nightRefused       = nightNoAuth + nightNoTrade + nightNotFound + nightNamed
	nightEnqueued      = nightImported + nightAlreadyMember + nightRefused
)

// importNight runs the night's import on a queue of its own.
func importNight(t *testing.T) *nightRun {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a worker")
	}
	n := &nightRun{r: testkit.NewRedis(t), member: map[string]tasks.Payload{}, refused: map[string][]string{}}
	n.queue = n.r.Queue(t)
	srv := wechatpaytest.NewServer(wechatpaytest.TestKeys(t))
	t.Cleanup(srv.Close)
	rdb, err := redisconn.Client(n.r.Opt)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	n.rs, err = results.New(rdb, n.queue)
	require.NoError(t, err)
	client := asynq.NewClient(n.r.Opt)
	t.Cleanup(func() { _ = client.Close() })
	n.insp = asynq.NewInspector(n.r.Opt)
	t.Cleanup(func() { _ = n.insp.Close() })

	stop := startWorker(t, srv, n.r, n.queue)
	runID := results.NewRunID(time.Now())
	prod, err := tasks.NewProducer(client, tasks.WithRun(n.rs, runID), tasks.WithTaskOptions(tasks.WithQueue(n.queue)))
	require.NoError(t, err)
	ctx := testkit.Context(t)

	seq := 0
	next := func(card, openid string) tasks.Payload {
		seq++
		p := tasks.Payload{CardID: card, OpenID: fmt.Sprintf("%s%04d", openid, seq), OutRequestNo: fmt.Sprintf("1900000001-20261204-night%04d", seq)}
		n.member[p.OutRequestNo] = p
		return p
	}
	// First alone, so that the refusal scheduled for the next call is
	// its own: WeChat's message names the member.
	named := next(runsCard, "oUpF8uMuAJO_RunsNamed")
	srv.FailNext(1, http.StatusBadRequest, "PARAM_ERROR", "openid "+named.OpenID+" 与 appid 不匹配")
	_, err = prod.Enqueue(ctx, named)
	require.NoError(t, err)
	n.refused["PARAM_ERROR"] = append(n.refused["PARAM_ERROR"], named.OutRequestNo)
	n.waitDone(t, 1)

	var batch []tasks.Payload
	for range nightImported {
		batch = append(batch, next(runsCard, "oUpF8uMuAJO_RunsOK"))
	}
	for range nightAlreadyMember {
		batch = append(batch, next(runsCard, wechatpaytest.OpenIDPrefixMember+"Runs"))
	}
	for range nightNoAuth {
		p := next(wechatpaytest.CardIDPrefixNoAuth+"WOibDc5-TBnbUk1", "oUpF8uMuAJO_RunsNoAuth")
		n.refused["NO_AUTH"] = append(n.refused["NO_AUTH"], p.OutRequestNo)
		batch = append(batch, p)
	}
	for range nightNoTrade {
		p := next(runsCard, wechatpaytest.OpenIDPrefixNoTrade+"Runs")
		n.refused["INVALID_REQUEST"] = append(n.refused["INVALID_REQUEST"], p.OutRequestNo)
		batch = append(batch, p)
	}
	for range nightNotFound {
		p := next(wechatpaytest.CardIDPrefixNotFound+"WOibDc5-TBnbUk1", "oUpF8uMuAJO_RunsNotFound")
		n.refused["NOT_FOUND"] = append(n.refused["NOT_FOUND"], p.OutRequestNo)
		batch = append(batch, p)
	}
	// A repeat of a member, and a member no import can take: the run
	// counts both without enqueueing them.
	batch = append(batch, batch[0], tasks.Payload{CardID: runsCard, OpenID: "not an openid", OutRequestNo: "1900000001-20261204-nightbad"})
	_, err = prod.EnqueueMany(ctx, batch)
	require.NoError(t, err)
	require.NoError(t, prod.CloseRun(ctx))
	n.run = n.waitDone(t, nightEnqueued)
	require.True(t, n.run.Settled(), "run %+v", n.run)
	stop()
	return n
}

// waitDone waits until done members of the run have finished.
func (n *nightRun) waitDone(t *testing.T, done int64) results.Run {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		runs, err := n.rs.Runs(context.Background(), 1)
		require.NoError(t, err)
		if len(runs) == 1 {
			r := runs[0]
			if r.Imported+r.AlreadyMember+r.Dead >= done && (done < nightEnqueued || r.Settled()) {
				return r
			}
		}
		require.True(t, time.Now().Before(deadline), "run not done within 60s: %+v", runs)
		time.Sleep(50 * time.Millisecond)
	}
}

// openids are the openids of every member handed over.
func (n *nightRun) openids() []string {
	var out []string
	for _, p := range n.member {
		out = append(out, p.OpenID)
	}
	return out
}

// state is where asynq holds the task of out_request_no no.
func (n *nightRun) state(t *testing.T, no string) asynq.TaskState {
	t.Helper()
	info, err := n.insp.GetTaskInfo(n.queue, no)
	require.NoError(t, err)
	return info.State
}

// startWorker runs a worker in this process on queue, importing into srv,
// and returns what stops it.
func startWorker(t *testing.T, srv *wechatpaytest.Server, r *testkit.Redis, queue string) (stop func()) {
	t.Helper()
	env := testkit.WorkerEnv(t, srv, r, queue)
	ctx, cancel := context.WithCancel(context.Background())
	logs, exited := &testkit.Buffer{}, make(chan struct{})
	var runErr error
	go func() {
		defer close(exited)
		runErr = worker.Run(ctx, []string{"--queue", queue, "--concurrency", "4", "--shutdown-timeout", "2s"},
			func(k string) string { return env[k] }, logs, logs)
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-exited:
			require.NoError(t, runErr, "worker:\n%s", logs.String())
		case <-time.After(30 * time.Second):
			t.Fatalf("worker did not stop:\n%s", logs.String())
		}
	}
	t.Cleanup(stop)
	return stop
}

// serve serves a dashboard of the night's queue on 127.0.0.1.
func (n *nightRun) serve(t *testing.T, cfg dashboard.Config) *bundle {
	t.Helper()
	cfg.Redis, cfg.Queue = n.r.Opt, n.queue
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	h, err := dashboard.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close() })
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &bundle{r: n.r, queue: n.queue, url: srv.URL, cfg: cfg}
}

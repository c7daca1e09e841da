package worker_test

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/guard"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
	"github.com/cardimport/cardimport/internal/worker"
	"github.com/cardimport/cardimport/tasks"
)

// fleet is a queue, an emulator and the environment of the workers that
// import from one into the other, run in this process with worker.Run.
type fleet struct {
	srv   *wechatpaytest.Server
	r     *testkit.Redis
	rdb   redis.UniversalClient
	queue string
	env   map[string]string
	insp  *asynq.Inspector
}

func setupFleet(t *testing.T, opts ...wechatpaytest.Option) *fleet {
	t.Helper()
	f := &fleet{r: testkit.NewRedis(t)}
	f.queue = f.r.Queue(t)
	f.srv = wechatpaytest.NewServer(wechatpaytest.TestKeys(t), opts...)
	t.Cleanup(f.srv.Close)
	env := testkit.WorkerEnv(t, f.srv, f.r, f.queue)
	env["RETRY_MIN_DELAY"] = "50ms"
	env["RETRY_MAX_DELAY"] = "200ms"
	f.env = env
	f.rdb = f.r.Opt.MakeRedisClient().(redis.UniversalClient)
	t.Cleanup(func() {
		require.NoError(t, guard.DeleteState(context.Background(), f.rdb, f.queue))
		_ = f.rdb.Close()
	})
	f.insp = asynq.NewInspector(f.r.Opt)
	t.Cleanup(func() { _ = f.insp.Close() })
	return f
}

// start runs a worker until the test ends; stop ends it early and waits.
func (f *fleet) start(t *testing.T, args ...string) (logs *testkit.Buffer, stop func()) {
	t.Helper()
	logs = &testkit.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- worker.Run(ctx, args, func(k string) string { return f.env[k] }, logs, logs) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err, "worker stops cleanly:\n%s", logs.String())
		case <-time.After(30 * time.Second):
			t.Fatal("worker did not stop")
		}
	}
	t.Cleanup(stop)
	return logs, stop
}

// enqueue puts n members in the queue and returns them.
func (f *fleet) enqueue(t *testing.T, prefix string, n int, opts ...tasks.Option) []tasks.Payload {
	t.Helper()
	c := asynq.NewClient(f.r.Opt)
	defer c.Close()
	ps := make([]tasks.Payload, n)
	for i := range ps {
		ps[i] = tasks.Payload{CardID: card, OpenID: fmt.Sprintf("oUpF8uMuAJO_M2pxb%05d", i), OutRequestNo: fmt.Sprintf("1900000001-20261128-%s%05d", prefix, i)}
		task, err := tasks.NewImportTask(ps[i], append([]tasks.Option{tasks.WithQueue(f.queue)}, opts...)...)
		require.NoError(t, err)
		_, err = c.Enqueue(task)
		require.NoError(t, err)
	}
	return ps
}

// waitDrained waits until every task is completed or archived.
func waitDrained(t *testing.T, insp *asynq.Inspector, queue string, n int, within time.Duration, logs fmt.Stringer) *asynq.QueueInfo {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		q, err := insp.GetQueueInfo(queue)
		require.NoError(t, err)
		if q.Completed+q.Archived == n {
			return q
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue not drained in %s: %+v\n%s", within, q, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitState polls the guard's state until ok accepts it.
func (f *fleet) waitState(t *testing.T, what string, within time.Duration, ok func(guard.State) bool) guard.State {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		s, err := guard.ReadState(context.Background(), f.rdb, f.queue)
		require.NoError(t, err)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s (state %+v)", what, within, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLongTwoWorkersShareTheRateLimit is the done-when: two worker
// processes with WECHATPAY_RATE_LIMIT=40 against a stand-in that refuses
// more than 40 calls in any second hold at least 90% of that rate between
// them, and fewer than 1% of their calls are refused.
func TestLongTwoWorkersShareTheRateLimit(t *testing.T) {
	testkit.Long(t)
	// Not parallel: the achieved rate is a measurement, and the emulator
	// runs in this process, which other tests of the package would load.
	if testing.Short() {
		t.Skip("starts worker processes for about ten seconds")
	}
	const rate, n = 40, 360
	run := runRateLimited(t, rate, n)
	for _, p := range run.payloads {
		require.Equal(t, 1, run.srv.ImportCount(p.CardID, p.OpenID))
	}
	require.GreaterOrEqual(t, run.achieved, 0.9, "the fleet uses the allowance")
	require.Less(t, run.refused, 0.01, "the fleet stays under the limit")
	for _, logs := range run.logs {
		require.Contains(t, logs.String(), `"message":"import done"`, "both workers import")
	}
}

// TestOutageOpensTheCircuitAndRecovers: WeChat answers 503 to everything.
// After a run of them the circuit opens: workers send only probes, tasks
// wait without spending retries and none is archived, even with a retry
// budget of two; when WeChat is back a probe closes the circuit and every
// member is imported.
func TestOutageOpensTheCircuitAndRecovers(t *testing.T) {
	t.Parallel()
	f := setupFleet(t)
	f.srv.SetOutage(503)
	const n, threshold = 30, 5
	probe := 300 * time.Millisecond
	ps := f.enqueue(t, "outage", n, tasks.WithMaxRetry(2))
	logs, _ := f.start(t, "--concurrency", "4", "--breaker-failures", fmt.Sprint(threshold), "--breaker-probe-interval", probe.String())

	open := f.waitState(t, "circuit opens", 30*time.Second, func(s guard.State) bool { return s.Open })
	require.Contains(t, open.Cause, "5xx answers or timeouts in a row")
	require.NotEmpty(t, open.Hint)

	// While open, at most the calls in flight when it opened and one per
	// probe interval reach WeChat.
	atOpen := f.srv.Stats().Refusals["SERVICE_UNAVAILABLE"]
	start := time.Now()
	deadline := start.Add(3 * time.Second)
	for time.Now().Before(deadline) {
		q, err := f.insp.GetQueueInfo(f.queue)
		require.NoError(t, err)
		require.Zero(t, q.Archived, "nothing archived while the circuit is open")
		time.Sleep(100 * time.Millisecond)
	}
	calls := f.srv.Stats().Refusals["SERVICE_UNAVAILABLE"] - atOpen
	maxCalls := 4 + int(time.Since(start)/probe) + 1
	t.Logf("calls while open over %s: %d (at most %d)", time.Since(start).Round(time.Millisecond), calls, maxCalls)
	require.LessOrEqual(t, calls, maxCalls)
	require.Positive(t, calls, "probes go on while open")

	f.srv.SetOutage(0)
	q := waitDrained(t, f.insp, f.queue, n, 60*time.Second, logs)
	require.Zero(t, q.Archived)
	spent := 0
	for _, p := range ps {
		require.Equal(t, 1, f.srv.ImportCount(p.CardID, p.OpenID))
		info, err := f.insp.GetTaskInfo(f.queue, p.OutRequestNo)
		require.NoError(t, err)
		spent += info.Retried
	}
	require.Less(t, spent, threshold+4, "only failures before the circuit opened spent retries")
	f.waitState(t, "circuit closed", 5*time.Second, func(s guard.State) bool { return !s.Open })
	out := logs.String()
	require.Equal(t, 1, strings.Count(out, `"message":"circuit opened, imports wait without spending retries"`), out)
	require.Equal(t, 1, strings.Count(out, `"message":"circuit closed, imports resume"`), out)
}

// TestLongWrongKeyArchivesNothingAndRestartImports is the done-when: a
// worker whose key WeChat rejects archives nothing over 15 seconds, says in
// its log that signing fails, calls WeChat only to probe; restarted with
// the right key it imports every task.
func TestLongWrongKeyArchivesNothingAndRestartImports(t *testing.T) {
	testkit.Long(t)
	t.Parallel()
	b := setupProcess(t)
	wrong, err := wechatpaytest.GenerateKeys()
	require.NoError(t, err)
	k := *b.srv.Keys
	k.MchPrivateKey = wrong.MchPrivateKey
	wrongEnv, err := k.WriteDir(t.TempDir(), b.srv.URL)
	require.NoError(t, err)

	const n = 20
	ps := make([]tasks.Payload, n)
	for i := range ps {
		ps[i] = tasks.Payload{CardID: card, OpenID: fmt.Sprintf("oUpF8uMuAJO_M2pxb%05d", i), OutRequestNo: fmt.Sprintf("1900000001-20261128-key%05d", i)}
		b.enqueue(t, ps[i])
	}

	good := b.env
	b.env = append(append([]string(nil), good...), "WECHATPAY_MCH_PRIVATE_KEY_FILE="+wrongEnv["WECHATPAY_MCH_PRIVATE_KEY_FILE"])
	cmd, out := b.start(t)
	const run, probe = 15 * time.Second, 5 * time.Second // the default probe interval
	end := time.Now().Add(run)
	for time.Now().Before(end) {
		q, err := b.insp.GetQueueInfo(b.queue)
		require.NoError(t, err)
		require.Zero(t, q.Archived, "nothing archived:\n%s", out.String())
		time.Sleep(200 * time.Millisecond)
	}
	stopping := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), out.String())
	t.Logf("stopped in %s", time.Since(stopping).Round(time.Millisecond))

	logs := out.String()
	require.Regexp(t, `"level":"error".*"cause":"wechat pay rejects our signature \(401 SIGN_ERROR\)".*"message":"circuit opened`, logs)
	require.Contains(t, logs, "WECHATPAY_MCH_CERT_SERIAL", "the hint names what to check")
	calls := b.srv.Stats().Refusals["SIGN_ERROR"]
	// The worker runs two imports at once (setupProcess): both may be in
	// flight when the circuit opens, then one probe per interval.
	t.Logf("SIGN_ERROR answers over %s: %d", run, calls)
	require.LessOrEqual(t, calls, 2+int(run/probe)+1)
	for _, p := range ps {
		info, err := b.insp.GetTaskInfo(b.queue, p.OutRequestNo)
		require.NoError(t, err)
		require.Zero(t, info.Retried, "a rejected signature spends no retry")
	}

	b.env = good
	restart := time.Now()
	_, out = b.start(t)
	for _, p := range ps {
		b.waitState(t, p.OutRequestNo, asynq.TaskStateCompleted, 60*time.Second)
		require.Equal(t, 1, b.srv.ImportCount(p.CardID, p.OpenID))
	}
	t.Logf("all imported %s after the restart", time.Since(restart).Round(time.Millisecond))
	require.Contains(t, out.String(), `"message":"circuit closed, imports resume"`)
}

package guard_test

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/guard"
	"github.com/cardimport/cardimport/internal/importer"
	"github.com/cardimport/cardimport/internal/redisconn"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/wechatpay"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

const card = "pbLatjvWOibDc5-TBnbUk1pD12o0"

// testBundle is a queue's shared state in Redis and an emulator; guards
// made with newGuard stand for workers of the fleet.
type testBundle struct {
	srv   *wechatpaytest.Server
	redis *testkit.Redis
	rdb   redis.UniversalClient
	queue string
}

func setup(t *testing.T, opts ...wechatpaytest.Option) *testBundle {
	t.Helper()
	r := testkit.NewRedis(t)
	b := &testBundle{redis: r, queue: r.Queue(t), rdb: r.Opt.MakeRedisClient().(redis.UniversalClient)}
	t.Cleanup(func() {
		require.NoError(t, guard.DeleteState(context.Background(), b.rdb, b.queue))
		_ = b.rdb.Close()
	})
	b.srv = wechatpaytest.NewServer(wechatpaytest.TestKeys(t), opts...)
	t.Cleanup(b.srv.Close)
	return b
}

// newGuard returns a worker's guard, signing with key (nil: the right one),
// and its log.
func (b *testBundle) newGuard(t *testing.T, key *rsa.PrivateKey, cfg guard.Config) (*guard.Guard, *testkit.Buffer) {
	t.Helper()
	return b.newGuardOn(t, b.rdb, key, cfg)
}

// newGuardOn is newGuard with its own Redis client.
func (b *testBundle) newGuardOn(t *testing.T, rdb redis.UniversalClient, key *rsa.PrivateKey, cfg guard.Config) (*guard.Guard, *testkit.Buffer) {
	t.Helper()
	wcfg := b.srv.ClientConfig(wechatpay.ModePublicKey)
	if key != nil {
		wcfg.MchPrivateKey = key
	}
	wc, err := wechatpay.NewClient(context.Background(), wcfg)
	require.NoError(t, err)
	t.Cleanup(wc.Close)
	logs := &testkit.Buffer{}
	log := zerolog.New(logs)
	cfg.Redis, cfg.Queue, cfg.Logger = rdb, b.queue, &log
	if cfg.Rate == 0 {
		cfg.Rate = 1000
	}
	g, err := guard.New(wc, cfg)
	require.NoError(t, err)
	return g, logs
}

func (b *testBundle) state(t *testing.T) guard.State {
	t.Helper()
	s, err := guard.ReadState(context.Background(), b.rdb, b.queue)
	require.NoError(t, err)
	return s
}

var seq atomic.Int64

func request() wechatpay.ImportRequest {
	n := seq.Add(1)
	return wechatpay.ImportRequest{CardID: card, OpenID: fmt.Sprintf("oUpF8uMuAJO_M2pxb%05d", n), OutRequestNo: fmt.Sprintf("1900000001-20261128-g%05d", n)}
}

func wrongKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := wechatpaytest.GenerateKeys()
	require.NoError(t, err)
	return k.MchPrivateKey
}

func TestNewNamesWhatIsMissing(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	var importer importer.Importer = &wechatpay.Client{}
	tests := []struct {
		name string
		cfg  guard.Config
		want string
	}{
		{name: "no redis", cfg: guard.Config{Queue: "q", Rate: 1}, want: "guard: Redis is required"},
		{name: "no queue", cfg: guard.Config{Redis: rdb, Rate: 1}, want: "guard: Queue is required"},
		{name: "no rate", cfg: guard.Config{Redis: rdb, Queue: "q"}, want: "guard: Rate must be positive, got 0"},
		{name: "negative threshold", cfg: guard.Config{Redis: rdb, Queue: "q", Rate: 1, FailureThreshold: -1}, want: "guard: FailureThreshold must be at least 1, got -1"},
		{name: "negative probe", cfg: guard.Config{Redis: rdb, Queue: "q", Rate: 1, ProbeInterval: -time.Second}, want: "guard: ProbeInterval must be positive, got -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := guard.New(importer, tt.cfg)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// TestSignErrorOpensAtOnceAndAProbeCloses: the first SIGN_ERROR opens the
// circuit, logged once at error level with the cause and the hint; while
// it is open, however many tasks ask, WeChat sees about one call per probe
// interval and the rest are deferred; a worker with the right key closes it
// with its probe.
func TestSignErrorOpensAtOnceAndAProbeCloses(t *testing.T) {
	t.Parallel()
	b := setup(t)
	probe := 400 * time.Millisecond
	bad, badLogs := b.newGuard(t, wrongKey(t), guard.Config{ProbeInterval: probe, MaxWait: 100 * time.Millisecond})

	_, err := bad.Import(context.Background(), request())
	var werr *wechatpay.Error
	require.ErrorAs(t, err, &werr)
	require.Equal(t, wechatpay.KindSystemic, werr.Kind)
	s := b.state(t)
	require.True(t, s.Open)
	require.Equal(t, "wechat pay rejects our signature (401 SIGN_ERROR)", s.Cause)
	require.Contains(t, s.Hint, "WECHATPAY_MCH_CERT_SERIAL")

	start := time.Now()
	var wg sync.WaitGroup
	var deferred atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < 2*time.Second {
				_, err := bad.Import(context.Background(), request())
				// Probes' SIGN_ERRORs come back deferred too: the
				// circuit stands for them.
				var d *importer.DeferredError
				if errors.As(err, &d) && !importer.IsFailure(err) {
					deferred.Add(1)
				} else {
					t.Errorf("unexpected %v", err)
				}
			}
		}()
	}
	wg.Wait()
	calls := b.srv.Stats().Refusals["SIGN_ERROR"]
	t.Logf("%d deferred, %d SIGN_ERROR answers in %s", deferred.Load(), calls, time.Since(start))
	require.Positive(t, deferred.Load())
	require.LessOrEqual(t, calls, 1+int(time.Since(start)/probe)+1, "one probe per interval")
	require.Equal(t, 1, strings.Count(badLogs.String(), "circuit opened"), badLogs.String())
	require.Regexp(t, `"level":"error".*"cause":"wechat pay rejects our signature \(401 SIGN_ERROR\)","hint":"check WECHATPAY_MCH_PRIVATE_KEY_FILE`, badLogs.String())

	good, goodLogs := b.newGuard(t, nil, guard.Config{ProbeInterval: probe, MaxWait: 5 * time.Second})
	res, err := good.Import(context.Background(), request())
	require.NoError(t, err)
	require.NotEmpty(t, res.Code)
	require.False(t, b.state(t).Open)
	require.Equal(t, 1, strings.Count(goodLogs.String(), "circuit closed, imports resume"), goodLogs.String())
	require.Contains(t, goodLogs.String(), `"level":"info"`)
}

// TestOutageOpensAfterARunOfFailures: 5xx answers open the circuit only
// after the threshold; the failures from then on are deferred (they spend no
// retry); any good answer closes it.
func TestOutageOpensAfterARunOfFailures(t *testing.T) {
	t.Parallel()
	b := setup(t)
	g, logs := b.newGuard(t, nil, guard.Config{FailureThreshold: 3, ProbeInterval: 200 * time.Millisecond, MaxWait: 3 * time.Second})
	b.srv.SetOutage(503)
	for i := 1; i <= 2; i++ {
		_, err := g.Import(context.Background(), request())
		require.Equal(t, wechatpay.KindTransient, wechatpay.KindOf(err))
		require.True(t, importer.IsFailure(err), "before the circuit opens a 5xx is the task's to retry")
		require.False(t, b.state(t).Open)
		require.Equal(t, i, b.state(t).Failures)
	}
	_, err := g.Import(context.Background(), request())
	var d *importer.DeferredError
	require.ErrorAs(t, err, &d, "the failure that opens the circuit spends no retry")
	require.Contains(t, err.Error(), "http 503 SERVICE_UNAVAILABLE")
	s := b.state(t)
	require.True(t, s.Open)
	require.Equal(t, "wechat pay failing: 3 5xx answers or timeouts in a row (last: http 503 SERVICE_UNAVAILABLE)", s.Cause)

	b.srv.SetOutage(0)
	_, err = g.Import(context.Background(), request())
	require.NoError(t, err, "the probe succeeds")
	require.False(t, b.state(t).Open)
	require.Zero(t, b.state(t).Failures)
	require.Equal(t, 1, strings.Count(logs.String(), "circuit opened"))
	require.Equal(t, 1, strings.Count(logs.String(), "circuit closed"))
}

// TestUnverifiedAnswersOpenTheCircuit: answers that stop verifying, across
// members, are a key configured wrong: after the threshold the circuit
// opens with a hint naming the key settings, and from then on calls come
// back deferred, spending no retry; the list call is held like an import.
func TestUnverifiedAnswersOpenTheCircuit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	g, logs := b.newGuard(t, nil, guard.Config{UnverifiedThreshold: 3, ProbeInterval: 200 * time.Millisecond, MaxWait: 3 * time.Second})
	b.srv.ForgeNext(1000)
	b.srv.ForgeNextList(1000)
	for i := 1; i <= 2; i++ {
		_, err := g.Import(context.Background(), request())
		require.Equal(t, wechatpay.KindUnverified, wechatpay.KindOf(err))
		require.True(t, importer.IsFailure(err), "before the circuit opens it is the task's retry")
		require.Equal(t, i, b.state(t).Unverified)
		require.Zero(t, b.state(t).Failures, "a run of unverified answers is counted apart from outages")
	}
	_, err := g.Import(context.Background(), request())
	var d *importer.DeferredError
	require.ErrorAs(t, err, &d, "the answer that opens the circuit spends no retry")
	require.False(t, importer.IsFailure(err))
	s := b.state(t)
	require.True(t, s.Open)
	require.Equal(t, "wechat pay's answers do not verify: 3 in a row (last: http 200)", s.Cause)
	require.Contains(t, s.Hint, "WECHATPAY_PUBLIC_KEY_FILE")
	require.Contains(t, s.Hint, "WECHATPAY_APIV3_KEY_FILE")
	for range 3 {
		_, err = g.ListCards(context.Background(), wechatpay.ListCardsRequest{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"})
		require.ErrorAs(t, err, &d, "while open, a list call is held back or deferred too")
		require.False(t, importer.IsFailure(err))
	}
	require.Equal(t, 1, strings.Count(logs.String(), "circuit opened"))
}

// TestGoodAnswersResetTheRun: failures spread between good answers (and
// WeChat's refusals of single members, which prove it works) never open
// the circuit.
func TestGoodAnswersResetTheRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	g, _ := b.newGuard(t, nil, guard.Config{FailureThreshold: 2})
	for range 3 {
		b.srv.FailNext(1, 500, "SYSTEM_ERROR", "系统错误")
		_, err := g.Import(context.Background(), request())
		require.Error(t, err)
		req := request()
		req.OpenID = wechatpaytest.OpenIDPrefixNoTrade + "x1"
		_, err = g.Import(context.Background(), req)
		require.Equal(t, wechatpay.KindPermanent, wechatpay.KindOf(err))
	}
	require.False(t, b.state(t).Open)
}

// TestRateLimitedSlowsTheFleet: 429s are tried again in place and cut the
// shared rate for a while, with one warning per cut; none is a failure.
func TestRateLimitedSlowsTheFleet(t *testing.T) {
	t.Parallel()
	b := setup(t, wechatpaytest.WithRateLimit(5))
	g, logs := b.newGuard(t, nil, guard.Config{Rate: 50})
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Goroutines report with t.Errorf: require may only stop the
			// test from its own goroutine.
			if _, err := g.Import(context.Background(), request()); importer.IsFailure(err) {
				t.Errorf("a 429 spent a retry: %v", err)
			}
		}()
	}
	wg.Wait()
	require.Positive(t, b.srv.Stats().Refusals["RATELIMIT_EXCEEDED"])
	require.Less(t, b.state(t).RateFactor, 1.0)
	require.Contains(t, logs.String(), `"message":"wechat pay rate limit hit, slowing down"`)
}

// TestCollectorShowsTheCircuit: the metrics read the fleet's state.
func TestCollectorShowsTheCircuit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := guard.NewCollector(b.rdb, b.queue)
	want := func(open int) string {
		return fmt.Sprintf(`# HELP cardimport_circuit_open 1 while the circuit breaker to WeChat Pay is open: imports wait, only probes are sent.
# TYPE cardimport_circuit_open gauge
cardimport_circuit_open{queue=%q} %d
`, b.queue, open)
	}
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want(0)), "cardimport_circuit_open"))
	bad, _ := b.newGuard(t, wrongKey(t), guard.Config{})
	_, err := bad.Import(context.Background(), request())
	require.Error(t, err)
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want(1)), "cardimport_circuit_open"))
}

// TestProbesGoOneAtATime: when each probe waits long for its answer, the
// next one waits for it to end rather than for the interval alone.
func TestProbesGoOneAtATime(t *testing.T) {
	t.Parallel()
	b := setup(t)
	probe, latency := 100*time.Millisecond, 600*time.Millisecond
	g, _ := b.newGuard(t, nil, guard.Config{FailureThreshold: 1, ProbeInterval: probe, MaxWait: 200 * time.Millisecond})
	b.srv.SetOutage(503)
	b.srv.SetLatency(latency)
	_, err := g.Import(context.Background(), request())
	require.Error(t, err)
	require.True(t, b.state(t).Open)

	start := time.Now()
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < 3*time.Second {
				if _, err := g.Import(context.Background(), request()); importer.IsFailure(err) {
					t.Errorf("a call while open spent a retry: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	calls := b.srv.Stats().Refusals["SERVICE_UNAVAILABLE"] - 1
	t.Logf("%d probes in %s", calls, elapsed.Round(time.Millisecond))
	require.Positive(t, calls)
	require.LessOrEqual(t, calls, int(elapsed/(latency+probe))+1)
}

// TestNoRoomDefers: a call that finds no room in the shared rate before
// its wait ends is deferred (no retry spent) without reaching WeChat.
func TestNoRoomDefers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	g, _ := b.newGuard(t, nil, guard.Config{Rate: 1, MaxWait: 300 * time.Millisecond})
	var wg sync.WaitGroup
	var done, deferred atomic.Int64
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := g.Import(context.Background(), request())
			var d *importer.DeferredError
			switch {
			case err == nil:
				done.Add(1)
			case errors.As(err, &d) && d.Reason == importer.DeferRateLimit && !importer.IsFailure(err):
				deferred.Add(1)
			default:
				t.Errorf("unexpected %v", err)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int64(1), done.Load(), "one call a second")
	require.Equal(t, int64(4), deferred.Load())
	require.Equal(t, 1, b.srv.Stats().Requests)
}

// TestNoTimeLeftForTheCallDefers: a task whose deadline leaves less than
// a call can take (importer.CallReserve) is deferred every time, without
// reaching WeChat, even when the rate and the circuit have room: the call
// would be cut short by the deadline and counted against the task.
func TestNoTimeLeftForTheCallDefers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	g, _ := b.newGuard(t, nil, guard.Config{})
	for i := range 20 {
		// Sequential calls, so the limiter's turn is always free: an
		// already-passed wait must win over it every time, not by chance.
		// 18 s: more than one HTTP timeout, less than a call that fails
		// over to the backup host (a 5 s dial, then 15 s).
		ctx, cancel := context.WithTimeout(context.Background(), 18*time.Second)
		_, err := g.Import(ctx, request())
		cancel()
		var d *importer.DeferredError
		require.ErrorAs(t, err, &d, "call %d", i)
		require.Equal(t, importer.DeferRateLimit, d.Reason)
		require.False(t, importer.IsFailure(err))
	}
	require.Equal(t, 0, b.srv.Stats().Requests)

	// With room for the call, it goes through.
	ctx, cancel := context.WithTimeout(context.Background(), importer.CallReserve+5*time.Second)
	defer cancel()
	_, err := g.Import(ctx, request())
	require.NoError(t, err)
	require.Equal(t, 1, b.srv.Stats().Requests)
}

// circuitCalls counts the commands a Redis client sends that name a
// circuit's key (the breaker's scripts), a script Redis did not hold yet
// once.
type circuitCalls struct{ n atomic.Int64 }

func (c *circuitCalls) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *circuitCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if redis.HasErrorPrefix(err, "NOSCRIPT") {
			// go-redis loads the script and runs it again: one call.
			return err
		}
		for _, a := range cmd.Args() {
			if s, ok := a.(string); ok && strings.HasSuffix(s, ":circuit") {
				c.n.Add(1)
				break
			}
		}
		return err
	}
}

func (c *circuitCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// countingClient is a Redis client of the bundle's Redis that counts the
// breaker's round trips.
func (b *testBundle) countingClient(t *testing.T) (redis.UniversalClient, *circuitCalls) {
	t.Helper()
	rdb, err := redisconn.Client(b.redis.Opt)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	calls := &circuitCalls{}
	rdb.AddHook(calls)
	return rdb, calls
}

// TestHealthyCallsSkipTheCircuitRoundTrips: while the circuit is closed
// and no failure is counted, a worker asks Redis about the circuit about
// once per guard.ViewFresh, not twice a call; a failure makes it ask at
// every call again, and the good answer after it resets the run in Redis.
func TestHealthyCallsSkipTheCircuitRoundTrips(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rdb, calls := b.countingClient(t)
	g, _ := b.newGuardOn(t, rdb, nil, guard.Config{FailureThreshold: 3})
	const n = 40
	start := time.Now()
	for range n {
		_, err := g.Import(context.Background(), request())
		require.NoError(t, err)
	}
	elapsed := time.Since(start)
	bound := 1 + int64(elapsed/guard.ViewFresh+1)
	t.Logf("%d calls in %s: %d circuit round trips (bound %d)", n, elapsed.Round(time.Millisecond), calls.n.Load(), bound)
	require.LessOrEqual(t, calls.n.Load(), bound)
	require.Less(t, calls.n.Load(), int64(n), "fewer than one a call")

	b.srv.FailNext(1, 500, "SYSTEM_ERROR", "系统错误")
	_, err := g.Import(context.Background(), request())
	require.Error(t, err)
	require.Equal(t, 1, b.state(t).Failures)
	before := calls.n.Load()
	_, err = g.Import(context.Background(), request())
	require.NoError(t, err)
	require.Zero(t, b.state(t).Failures, "the good answer after a failure resets the run")
	require.Equal(t, int64(2), calls.n.Load()-before, "after a failure: the circuit is read before the call and reset after it")
}

// TestAnotherWorkersOpenCircuitReachesAHealthyWorker: a worker whose calls
// all went well sees a circuit another worker opened within
// guard.ViewFresh: its next call after that waits for the probe turn, and,
// its signature being good, closes the circuit.
func TestAnotherWorkersOpenCircuitReachesAHealthyWorker(t *testing.T) {
	t.Parallel()
	b := setup(t)
	probe := 300 * time.Millisecond
	good, goodLogs := b.newGuard(t, nil, guard.Config{ProbeInterval: probe, MaxWait: 3 * time.Second})
	_, err := good.Import(context.Background(), request())
	require.NoError(t, err)

	bad, _ := b.newGuard(t, wrongKey(t), guard.Config{ProbeInterval: probe})
	_, err = bad.Import(context.Background(), request())
	require.Equal(t, wechatpay.KindSystemic, wechatpay.KindOf(err))
	require.True(t, b.state(t).Open)

	time.Sleep(guard.ViewFresh)
	start := time.Now()
	_, err = good.Import(context.Background(), request())
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), probe/2, "the call waited for the probe turn")
	require.False(t, b.state(t).Open)
	require.Equal(t, 1, strings.Count(goodLogs.String(), "circuit closed, imports resume"), goodLogs.String())
}

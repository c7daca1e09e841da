package metrics_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/importer"
	"github.com/cardimport/cardimport/internal/logging"
	"github.com/cardimport/cardimport/internal/metrics"
	"github.com/cardimport/cardimport/internal/metrics/metricstest"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/wechatpay"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
	"github.com/cardimport/cardimport/tasks"
)

const card = "pbLatjvWOibDc5-TBnbUk1pD12o0"

var seq atomic.Int64

func nextNo() string { return fmt.Sprintf("1900000001-20261128-m%06d", seq.Add(1)) }

// serve registers cfg's metrics and serves them; it returns the registry
// and the URL of /metrics.
func serve(t *testing.T, cfg metrics.Config) (*metrics.Metrics, string) {
	t.Helper()
	m, err := metrics.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	return m, srv.URL + "/metrics"
}

// TestImportsByOutcome: attempts run by the handler against the emulator
// are counted by how they ended and WeChat's code, import calls timed, and
// list calls counted.
func TestImportsByOutcome(t *testing.T) {
	t.Parallel()
	r := testkit.NewPrivateRedis(t)
	m, url := serve(t, metrics.Config{Redis: r.Opt})
	srv := wechatpaytest.NewServer(wechatpaytest.TestKeys(t))
	t.Cleanup(srv.Close)
	client, err := wechatpay.NewClient(context.Background(), srv.ClientConfig(wechatpay.ModePublicKey))
	require.NoError(t, err)
	t.Cleanup(client.Close)
	h, err := importer.NewHandler(importer.HandlerConfig{Importer: m.InstrumentImporter(client), Observer: m})
	require.NoError(t, err)

	call := func(cardID, openid string) error {
		data, err := json.Marshal(tasks.Payload{CardID: cardID, OpenID: openid, OutRequestNo: nextNo()})
		require.NoError(t, err)
		return h.ProcessTask(context.Background(), asynq.NewTask(tasks.TypeImport, data))
	}
	require.NoError(t, call(card, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"))
	require.NoError(t, call(card, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6p"))
	require.NoError(t, call(card, wechatpaytest.OpenIDPrefixMember+"MuAJO_M2pxb1Q9z"), "a holder, confirmed by the list")
	require.Error(t, call(wechatpaytest.CardIDPrefixNoAuth+"WOibDc5-TBnbUk1", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6q"))
	require.Error(t, call(card, wechatpaytest.OpenIDPrefixNoTrade+"MuAJO_M2pxb1Q9z"))
	srv.FailNext(1, http.StatusInternalServerError, "SYSTEM_ERROR", "系统错误")
	srv.FailNext(1, http.StatusTooManyRequests, "FREQUENCY_LIMITED", "频率超限")
	srv.FailNext(1, http.StatusUnauthorized, "SIGN_ERROR", "签名错误")
	srv.FailNext(1, http.StatusBadRequest, "a weird code", "?")
	for range 4 {
		require.Error(t, call(card, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6r"))
	}
	srv.ForgeNext(1)
	require.Error(t, call(card, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6s"))

	got := metricstest.Scrape(t, url)
	tests := []struct {
		outcome, code string
		want          float64
	}{
		{metrics.OutcomeImported, "", 2},
		{metrics.OutcomeAlreadyMember, "", 1},
		{metrics.OutcomeRefused, "NO_AUTH", 1},
		{metrics.OutcomeRefused, "INVALID_REQUEST", 1},
		{metrics.OutcomeTransient, "SYSTEM_ERROR", 1},
		{metrics.OutcomeRateLimited, "FREQUENCY_LIMITED", 1},
		{metrics.OutcomeSystemic, "SIGN_ERROR", 1},
		{metrics.OutcomeRefused, "OTHER", 1},
		{metrics.OutcomeUnverified, "", 1},
	}
	for _, tt := range tests {
		v, ok := got.Value(metrics.ImportsTotal, "outcome", tt.outcome, "wechat_code", tt.code)
		require.True(t, ok, "%s{outcome=%q,wechat_code=%q} is exposed", metrics.ImportsTotal, tt.outcome, tt.code)
		require.Equal(t, tt.want, v, "%s %s", tt.outcome, tt.code)
	}
	for outcome, want := range map[string]float64{metrics.OutcomeImported: 2, metrics.OutcomeRefused: 4, metrics.OutcomeTransient: 1, metrics.OutcomeUnverified: 1} {
		n, ok := got.Value(metrics.CallDurationSeconds, "outcome", outcome)
		require.True(t, ok)
		require.Equal(t, want, n, "calls timed for %s", outcome)
	}
	lists, ok := got.Value(metrics.CardListCallsTotal, "outcome", "listed")
	require.True(t, ok)
	require.Equal(t, 2.0, lists, "the holder and the member without a trade were looked up")
}

// TestClassifyWithoutAnAnswer: an error that is not WeChat's answer (a
// network failure, a cancelled context) counts as transient without a code.
func TestClassifyWithoutAnAnswer(t *testing.T) {
	t.Parallel()
	r := testkit.NewPrivateRedis(t)
	m, url := serve(t, metrics.Config{Redis: r.Opt})
	h, err := importer.NewHandler(importer.HandlerConfig{Importer: failing{err: fmt.Errorf("import: %w", context.DeadlineExceeded)}, Observer: m})
	require.NoError(t, err)
	data, err := json.Marshal(tasks.Payload{CardID: card, OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", OutRequestNo: nextNo()})
	require.NoError(t, err)
	err = h.ProcessTask(context.Background(), asynq.NewTask(tasks.TypeImport, data))
	require.ErrorIs(t, err, context.DeadlineExceeded, "the error passes through")
	v, ok := metricstest.Scrape(t, url).Value(metrics.ImportsTotal, "outcome", metrics.OutcomeTransient, "wechat_code", "")
	require.True(t, ok)
	require.Equal(t, 1.0, v)
}

type failing struct{ err error }

func (f failing) Import(context.Context, wechatpay.ImportRequest) (wechatpay.ImportResult, error) {
	return wechatpay.ImportResult{}, f.err
}

func (f failing) ListCards(context.Context, wechatpay.ListCardsRequest) (wechatpay.CardPage, error) {
	return wechatpay.CardPage{}, f.err
}

// TestQueueCollector: asynq's queue collector reports the test queue's
// tasks by state.
func TestQueueCollector(t *testing.T) {
	t.Parallel()
	r := testkit.NewPrivateRedis(t)
	q := r.Queue(t)
	_, url := serve(t, metrics.Config{Redis: r.Opt})
	c := asynq.NewClient(r.Opt)
	defer c.Close()
	var ids []string
	for i := range 3 {
		task, err := tasks.NewImportTask(tasks.Payload{CardID: card, OpenID: fmt.Sprintf("oUpF8uMuAJO_M2pxb1Q9zNjWe%03d", i), OutRequestNo: nextNo()}, tasks.WithQueue(q))
		require.NoError(t, err)
		info, err := c.Enqueue(task)
		require.NoError(t, err)
		ids = append(ids, info.ID)
	}
	insp := asynq.NewInspector(r.Opt)
	defer insp.Close()
	require.NoError(t, insp.ArchiveTask(q, ids[0]))

	got := metricstest.Scrape(t, url)
	for state, want := range map[string]float64{"pending": 2, "archived": 1, "active": 0, "completed": 0} {
		v, ok := got.Value("asynq_tasks_enqueued_total", "queue", q, "state", state)
		require.True(t, ok, "state %s exposed", state)
		require.Equal(t, want, v, state)
	}
	size, ok := got.Value("asynq_queue_size", "queue", q)
	require.True(t, ok)
	require.Equal(t, 3.0, size)
	_, ok = got.Value("go_goroutines")
	require.True(t, ok, "Go runtime metrics are exposed")
}

// TestDeadLetterGauge: the dead-letter count is read at each scrape; a
// failing source is logged and left out while the rest is still
// served.
func TestDeadLetterGauge(t *testing.T) {
	t.Parallel()
	r := testkit.NewPrivateRedis(t)
	var dead atomic.Int64
	dead.Store(7)
	var failDead atomic.Bool
	logs := &testkit.Buffer{}
	log, err := logging.New(logs, "info")
	require.NoError(t, err)
	_, url := serve(t, metrics.Config{
		Redis:  r.Opt,
		Queue:  "membercard",
		Logger: &log,
		DeadLetters: func(context.Context) (int64, error) {
			if failDead.Load() {
				return 0, errors.New("redis: connection refused")
			}
			return dead.Load(), nil
		},
	})

	got := metricstest.Scrape(t, url)
	v, ok := got.Value(metrics.DeadLetters, "queue", "membercard")
	require.True(t, ok)
	require.Equal(t, 7.0, v)

	dead.Store(3)
	got = metricstest.Scrape(t, url)
	v, _ = got.Value(metrics.DeadLetters, "queue", "membercard")
	require.Equal(t, 3.0, v, "read at each scrape")

	failDead.Store(true)
	got = metricstest.Scrape(t, url)
	_, ok = got.Value(metrics.DeadLetters, "queue", "membercard")
	require.False(t, ok, "a failed count is left out, not reported as 0")
	_, ok = got.Value("go_goroutines")
	require.True(t, ok, "the rest is served")
	require.Contains(t, logs.String(), `"message":"metrics collection failed"`)
	require.Contains(t, logs.String(), "connection refused")
}

// TestExtraCollectors: a part that brings its own collector (the circuit
// breaker) is exposed as it is; a name clash is refused at start.
func TestExtraCollectors(t *testing.T) {
	t.Parallel()
	r := testkit.NewPrivateRedis(t)
	g := newGauge("cardimport_breaker_trips_total", 2)
	_, url := serve(t, metrics.Config{Redis: r.Opt, Extra: []prometheus.Collector{g}})
	v, ok := metricstest.Scrape(t, url).Value("cardimport_breaker_trips_total")
	require.True(t, ok)
	require.Equal(t, 2.0, v)

	_, err := metrics.New(metrics.Config{Redis: r.Opt, Extra: []prometheus.Collector{newGauge(metrics.ImportsTotal, 1)}})
	require.ErrorContains(t, err, "metrics: register")
}

func newGauge(name string, v float64) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "test"})
	g.Set(v)
	return g
}

// TestWebhookAndRunMetrics: webhook deliveries by result with their
// latency, and the runs in progress read at each scrape.
func TestWebhookAndRunMetrics(t *testing.T) {
	t.Parallel()
	r := testkit.NewPrivateRedis(t)
	m, url := serve(t, metrics.Config{Redis: r.Opt, RunsInProgress: func(context.Context) (int64, error) { return 2, nil }})
	m.ObserveWebhook("delivered", 30*time.Millisecond)
	m.ObserveWebhook("delivered", 40*time.Millisecond)
	m.ObserveWebhook("unreachable", 10*time.Second)
	got := metricstest.Scrape(t, url)
	for result, want := range map[string]float64{"delivered": 2, "unreachable": 1} {
		v, ok := got.Value(metrics.WebhookDeliveriesTotal, "result", result)
		require.True(t, ok)
		require.Equal(t, want, v)
		n, ok := got.Value(metrics.WebhookDeliverySeconds, "result", result)
		require.True(t, ok)
		require.Equal(t, want, n, "deliveries timed")
	}
	v, ok := got.Value(metrics.RunsInProgress, "queue", "membercard")
	require.True(t, ok)
	require.Equal(t, 2.0, v)
}

// Package metrics exposes the worker to Prometheus: asynq's own queue
// collector (sizes by state, latency, processed and failed totals), the
// worker's imports by outcome and WeChat code, the latency of WeChat calls,
// the dead-letter count, and the collectors other parts bring (the circuit
// breaker's state). It never labels anything with a member's openid or an
// out_request_no, so the endpoint holds no personal data and can be scraped
// without a login.
package metrics

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// Config configures the metrics.
type Config struct {
	// Redis is the queue's Redis, read by asynq's queue collector at each
	// scrape. Required.
	Redis asynq.RedisConnOpt
	// Queue labels the dead-letter gauge. Defaults to "membercard".
	Queue string
	// DeadLetters counts the dead-letter store's records, at each scrape
	// (deadletter.Store.Count). Defaults to none: no gauge.
	DeadLetters func(context.Context) (int64, error)
	// RunsInProgress counts the queue's runs not yet settled, at each
	// scrape (results.Store.InProgress). Defaults to none.
	RunsInProgress func(context.Context) (int64, error)
	// Extra collectors are registered as they are, for parts that bring
	// their own metrics, such as the circuit breaker's
	// (guard.NewCollector). Defaults to none.
	Extra []prometheus.Collector
	// Logger receives collection errors. Defaults to discarding them.
	Logger *zerolog.Logger
}

// Metric names, for dashboards and alerts.
const (
	ImportsTotal       = "cardimport_imports_total"
	CardListCallsTotal = "cardimport_card_list_calls_total"
	// WebhookDeliveriesTotal and WebhookDeliverySeconds count and time
	// the webhook deliveries.
	WebhookDeliveriesTotal = "cardimport_webhook_deliveries_total"
	WebhookDeliverySeconds = "cardimport_webhook_delivery_duration_seconds"
	// RunsInProgress is how many of the queue's runs have not settled.
	RunsInProgress      = "cardimport_runs_in_progress"
	CallDurationSeconds = "cardimport_wechat_call_duration_seconds"
	DeadLetters         = "cardimport_dead_letters"
)

// collectTimeout bounds each Redis read a scrape makes.
const collectTimeout = 5 * time.Second

// Metrics is the worker's registry.
type Metrics struct {
	reg             *prometheus.Registry
	imports         *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	cardLists       *prometheus.CounterVec
	webhooks        *prometheus.CounterVec
	webhookDuration *prometheus.HistogramVec
	inspector       *asynq.Inspector
	log             zerolog.Logger
}

// New returns the registry with every collector cfg asks for.
func New(cfg Config) (*Metrics, error) {
	if cfg.Redis == nil {
		return nil, fmt.Errorf("metrics: Redis is required")
	}
	if cfg.Queue == "" {
		cfg.Queue = "membercard"
	}
	m := &Metrics{
		reg:       prometheus.NewRegistry(),
		inspector: asynq.NewInspector(cfg.Redis),
		log:       zerolog.Nop(),
		imports: counter(ImportsTotal,
			"Import attempts that reached WeChat Pay, by how they ended (imported, already_member, refused, transient, unverified, rate_limited, systemic) and WeChat's error code.",
			"outcome", "wechat_code"),
		webhooks: counter(WebhookDeliveriesTotal,
			"Webhook deliveries by result: delivered (2xx), refused (another status), redirected (3xx, not followed), unreachable (no answer).",
			"result"),
		webhookDuration: histogram(WebhookDeliverySeconds,
			"Duration of webhook deliveries, by result; a delivery gives up after 10 s.",
			[]float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}, "result"),
		cardLists: counter(CardListCallsTotal,
			"Calls listing a member's cards (asked to confirm an already-member), by outcome (listed, or the kind of the failure).",
			"outcome"),
		duration: histogram(CallDurationSeconds,
			"Duration of import calls to WeChat Pay, backup host included, by outcome.",
			// WeChat answers in tens to hundreds of milliseconds; the
			// client gives up after 15 s.
			[]float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30}, "outcome"),
	}
	if cfg.Logger != nil {
		m.log = *cfg.Logger
	}
	for _, o := range outcomes {
		m.duration.WithLabelValues(o)
	}
	toRegister := []prometheus.Collector{
		m.imports, m.duration, m.cardLists, m.webhooks, m.webhookDuration,
		asynqmetrics.NewQueueMetricsCollector(m.inspector),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	if cfg.DeadLetters != nil {
		toRegister = append(toRegister, newGauge(DeadLetters, "Imports recorded in the dead-letter store: refused for good or out of retries, awaiting an operator.", cfg.Queue, cfg.DeadLetters))
	}
	if cfg.RunsInProgress != nil {
		toRegister = append(toRegister, newGauge(RunsInProgress, "Runs of the queue not yet settled: members still waiting, or their producer still enqueueing.", cfg.Queue, cfg.RunsInProgress))
	}
	toRegister = append(toRegister, cfg.Extra...)
	for _, c := range toRegister {
		if err := m.reg.Register(c); err != nil {
			_ = m.inspector.Close()
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	return m, nil
}

// counter is a counter vector of name and help, by labels.
func counter(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

// histogram is a histogram vector of name and help, with buckets, by labels.
func histogram(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
}

// Registry is where the metrics live, for tests and for embedding them in
// another exposition.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in Prometheus' exposition format. A collector
// that fails (Redis unreachable) is logged and left out; the rest is still
// served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:            errorLog{m.log},
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            m.reg,
		MaxRequestsInFlight: 4,
		Timeout:             30 * time.Second,
	})
}

// Close closes the queue collector's connection to Redis.
func (m *Metrics) Close() error { return m.inspector.Close() }

// errorLog hands promhttp's collection errors to zerolog.
type errorLog struct{ log zerolog.Logger }

func (l errorLog) Println(v ...any) {
	l.log.Warn().Str("detail", fmt.Sprint(v...)).Msg("metrics collection failed")
}

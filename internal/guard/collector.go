package guard

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Collector exports a queue's guard state to prometheus, read from Redis at
// each scrape, so that every worker (and any other process) reports the
// fleet's state rather than its own:
//
//	cardimport_circuit_open{queue}            1 while the circuit is open
//	cardimport_circuit_failures{queue}        5xx/timeouts since the last good answer
//	cardimport_rate_limit_factor{queue}       share of WECHATPAY_RATE_LIMIT in force
type Collector struct {
	rdb      redis.UniversalClient
	queue    string
	open     *prometheus.Desc
	failures *prometheus.Desc
	factor   *prometheus.Desc
	up       *prometheus.Desc
}

// NewCollector returns a Collector for queue. Register it with
// prometheus.MustRegister or a registry of your own.
func NewCollector(rdb redis.UniversalClient, queue string) *Collector {
	labels := prometheus.Labels{"queue": queue}
	return &Collector{
		rdb:      rdb,
		queue:    queue,
		open:     prometheus.NewDesc("cardimport_circuit_open", "1 while the circuit breaker to WeChat Pay is open: imports wait, only probes are sent.", nil, labels),
		failures: prometheus.NewDesc("cardimport_circuit_failures", "5xx answers and timeouts from WeChat Pay since its last good answer.", nil, labels),
		factor:   prometheus.NewDesc("cardimport_rate_limit_factor", "Share of WECHATPAY_RATE_LIMIT in force; below 1 for a few seconds after a 429.", nil, labels),
		up:       prometheus.NewDesc("cardimport_guard_state_up", "1 when the guard's state could be read from Redis.", nil, labels),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.open
	ch <- c.failures
	ch <- c.factor
	ch <- c.up
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := ReadState(ctx, c.rdb, c.queue)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	open := 0.0
	if s.Open {
		open = 1
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, open)
	ch <- prometheus.MustNewConstMetric(c.failures, prometheus.GaugeValue, float64(s.Failures))
	ch <- prometheus.MustNewConstMetric(c.factor, prometheus.GaugeValue, s.RateFactor)
}

package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// deadLetterCollector reads the dead-letter count at each scrape, so the
// gauge is right whichever process (worker, CLI, dashboard replay) changed
// the store.
type deadLetterCollector struct {
	desc  *prometheus.Desc
	queue string
	count func(context.Context) (int64, error)
}

func newDeadLetterCollector(queue string, count func(context.Context) (int64, error)) *deadLetterCollector {
	return &deadLetterCollector{
		desc:  prometheus.NewDesc(DeadLetters, "Imports recorded in the dead-letter store: refused for good or out of retries, awaiting an operator.", []string{"queue"}, nil),
		queue: queue,
		count: count,
	}
}

func (c *deadLetterCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *deadLetterCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	n, err := c.count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), c.queue)
}

// circuitStates are the states every breaker has; each gets a series so
// that an alert on state="open" has data while the circuit is closed.
var circuitStates = []string{"closed", "open", "half_open"}

// circuitCollector exposes the breaker's state as one series per state,
// 1 for the current one, the usual Prometheus shape for an enum.
type circuitCollector struct {
	desc  *prometheus.Desc
	state func(context.Context) (string, error)
}

func newCircuitCollector(state func(context.Context) (string, error)) *circuitCollector {
	return &circuitCollector{
		desc:  prometheus.NewDesc(CircuitState, "State of the circuit breaker in front of WeChat Pay: 1 for the current state.", []string{"state"}, nil),
		state: state,
	}
}

func (c *circuitCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *circuitCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	current, err := c.state(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	known := false
	for _, s := range circuitStates {
		v := 0.0
		if s == current {
			v, known = 1, true
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, s)
	}
	if !known {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1, current)
	}
}

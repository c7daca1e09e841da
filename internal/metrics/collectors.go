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

// newGauge is a gauge of the queue read from Redis at each scrape.
func newGauge(name, help, queue string, count func(context.Context) (int64, error)) *deadLetterCollector {
	return &deadLetterCollector{
		desc:  prometheus.NewDesc(name, help, []string{"queue"}, nil),
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

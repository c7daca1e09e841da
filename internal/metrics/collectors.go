package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// queueGauge is a gauge of the queue read from Redis at each scrape (the
// dead letters, the runs in progress), so the figure is the fleet's, right
// even in a --dashboard-only process where no worker writes.
type queueGauge struct {
	desc  *prometheus.Desc
	queue string
	count func(context.Context) (int64, error)
}

// newGauge is a gauge of the queue read from Redis at each scrape.
func newGauge(name, help, queue string, count func(context.Context) (int64, error)) *queueGauge {
	return &queueGauge{
		desc:  prometheus.NewDesc(name, help, []string{"queue"}, nil),
		queue: queue,
		count: count,
	}
}

func (c *queueGauge) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *queueGauge) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	n, err := c.count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), c.queue)
}

// Package metricstest scrapes a Prometheus endpoint the way Prometheus
// does and looks up series by name and labels, so tests assert on what an
// operator's dashboards would read rather than on Go values.
package metricstest

import (
	"io"
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Exposition is one scrape, by metric name.
type Exposition map[string]*dto.MetricFamily

// Scrape GETs url (…/metrics) and parses the text exposition. It fails the
// test on any error or a status other than 200.
func Scrape(tb testing.TB, url string) Exposition {
	tb.Helper()
	res, err := http.Get(url)
	if err != nil {
		tb.Fatalf("scrape %s: %v", url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		tb.Fatalf("scrape %s: %s\n%s", url, res.Status, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		tb.Fatalf("scrape %s: %v", url, err)
	}
	return fams
}

// Value returns the value of the series of metric name whose labels include
// the given name/value pairs: a counter's or gauge's value, a histogram's
// sample count. An empty label value matches an absent label. ok is false when no series matches.
func (e Exposition) Value(name string, labels ...string) (v float64, ok bool) {
	fam, found := e[name]
	if !found {
		return 0, false
	}
	for _, m := range fam.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		// An empty value matches an absent label, as in PromQL.
		found := labels[i+1] == "" && !hasName(m, labels[i])
		for _, l := range m.GetLabel() {
			if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func hasName(m *dto.Metric, name string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return true
		}
	}
	return false
}

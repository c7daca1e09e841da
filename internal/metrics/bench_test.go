package metrics_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cardimport/cardimport/internal/metrics"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/wechatpay"
)

// BenchmarkInstrumentImporter: what counting and timing add to one import
// call (the call itself is a stub here; WeChat's take tens of ms).
func BenchmarkInstrumentImporter(b *testing.B) {
	r := testkit.NewRedis(b)
	m, err := metrics.New(metrics.Config{Redis: r.Opt})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	for _, bc := range []struct {
		name string
		err  error
	}{
		{"imported", nil},
		{"refused", &wechatpay.Error{Kind: wechatpay.KindPermanent, StatusCode: 403, Code: "NO_AUTH"}},
		{"network", errors.New("connection reset")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			imp := m.InstrumentImporter(failing{err: bc.err})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_, _ = imp.Import(ctx, wechatpay.ImportRequest{})
			}
		})
	}
}

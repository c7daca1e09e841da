package dashboard_test

import (
	"testing"

	"github.com/cardimport/cardimport/internal/dashboard"
	"github.com/cardimport/cardimport/tasks"
)

// BenchmarkFormatPayload: the cost of masking one payload; asynqmon formats
// one per task listed (20 a page by default).
func BenchmarkFormatPayload(b *testing.B) {
	payload := []byte(`{"card_id":"pbLatjvWOibDc5-TBnbUk1pD12o0","openid":"` + openid + `","out_request_no":"1900000001-20261128-000001"}`)
	b.ReportAllocs()
	for b.Loop() {
		_ = dashboard.FormatPayload(tasks.TypeImport, payload)
	}
}

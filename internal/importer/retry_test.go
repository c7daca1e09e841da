package importer_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/importer"
	"github.com/cardimport/cardimport/internal/wechatpay"
)

func TestIsFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "transient", err: fmt.Errorf("import: %w", &wechatpay.Error{Kind: wechatpay.KindTransient, StatusCode: 500}), want: true},
		{name: "unclassified", err: errors.New("boom"), want: true},
		{name: "rate limited", err: fmt.Errorf("import: %w", &wechatpay.Error{Kind: wechatpay.KindRateLimited, StatusCode: 429}), want: false},
		{name: "systemic", err: fmt.Errorf("import: %w", &wechatpay.Error{Kind: wechatpay.KindSystemic, StatusCode: 401}), want: false},
		{name: "lease expired", err: asynq.ErrLeaseExpired, want: false},
		{name: "deferred by the circuit", err: fmt.Errorf("import: %w", &importer.DeferredError{Reason: importer.DeferCircuitOpen}), want: false},
		{name: "5xx while the circuit is open", err: &importer.DeferredError{Reason: importer.DeferCircuitOpen, Err: &wechatpay.Error{Kind: wechatpay.KindTransient, StatusCode: 503}}, want: false},
		{name: "nil", err: nil, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, importer.IsFailure(tt.err))
		})
	}
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	minDelay, maxDelay := 2*time.Second, time.Minute
	delay := importer.RetryDelay(minDelay, maxDelay)
	transient := &wechatpay.Error{Kind: wechatpay.KindTransient}
	tests := []struct {
		name     string
		n        int
		err      error
		min, max time.Duration
	}{
		{name: "first retry", n: 0, err: transient, min: 2 * time.Second, max: 3 * time.Second},
		{name: "second retry", n: 1, err: transient, min: 2 * time.Second, max: 4 * time.Second},
		{name: "fourth retry", n: 3, err: transient, min: 8 * time.Second, max: 16 * time.Second},
		{name: "capped", n: 30, err: transient, min: 30 * time.Second, max: time.Minute},
		{name: "huge n does not overflow", n: 1 << 20, err: transient, min: 30 * time.Second, max: time.Minute},
		{name: "rate limited is short", n: 10, err: &wechatpay.Error{Kind: wechatpay.KindRateLimited}, min: 500 * time.Millisecond, max: time.Second},
		{name: "systemic waits", n: 0, err: &wechatpay.Error{Kind: wechatpay.KindSystemic}, min: 15 * time.Second, max: 30 * time.Second},
		{name: "deferred waits its RetryAfter", n: 5, err: &importer.DeferredError{Reason: importer.DeferCircuitOpen, RetryAfter: 4 * time.Second, Err: transient}, min: 2 * time.Second, max: 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[time.Duration]bool{}
			for range 200 {
				d := delay(tt.n, tt.err, nil)
				require.GreaterOrEqual(t, d, tt.min)
				require.LessOrEqual(t, d, tt.max)
				seen[d] = true
			}
			if tt.min != tt.max {
				require.Greater(t, len(seen), 1, "delays are jittered")
			}
		})
	}
}

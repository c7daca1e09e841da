package config_test

import (
	"io"
	"maps"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/config"
	"github.com/cardimport/cardimport/internal/guard"
)

func TestLoadWorkerGuard(t *testing.T) {
	t.Parallel()
	base := keyDir(t)
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    config.Guard
		wantErr string
	}{
		{name: "defaults", want: config.Guard{RateLimit: config.DefaultRateLimit, BreakerFailures: guard.DefaultFailureThreshold, BreakerProbeInterval: guard.DefaultProbeInterval}},
		{name: "decimal rate from env", env: map[string]string{"WECHATPAY_RATE_LIMIT": "2.5"}, want: config.Guard{RateLimit: 2.5, BreakerFailures: 10, BreakerProbeInterval: 5 * time.Second}},
		{name: "flags override", env: map[string]string{"WECHATPAY_RATE_LIMIT": "40"}, args: []string{"--rate-limit", "80", "--breaker-failures", "3", "--breaker-probe-interval", "1s"}, want: config.Guard{RateLimit: 80, BreakerFailures: 3, BreakerProbeInterval: time.Second}},
		{name: "rate not a number", env: map[string]string{"WECHATPAY_RATE_LIMIT": "40/s"}, wantErr: `WECHATPAY_RATE_LIMIT: "40/s" is not a number of calls a second (e.g. 10 or 2.5)`},
		{name: "rate zero", env: map[string]string{"WECHATPAY_RATE_LIMIT": "0"}, wantErr: "WECHATPAY_RATE_LIMIT: must be a positive number of calls a second, got 0"},
		{name: "rate NaN", env: map[string]string{"WECHATPAY_RATE_LIMIT": "NaN"}, wantErr: "WECHATPAY_RATE_LIMIT: must be a positive number of calls a second, got NaN"},
		{name: "threshold zero", args: []string{"--breaker-failures", "0"}, wantErr: "--breaker-failures: must be at least 1, got 0"},
		{name: "probe negative", args: []string{"--breaker-probe-interval", "-1s"}, wantErr: "--breaker-probe-interval: must be positive, got -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := maps.Clone(base)
			maps.Copy(env, tt.env)
			w, err := config.LoadWorker(tt.args, lookup(env), io.Discard)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, w.Guard)
		})
	}
}

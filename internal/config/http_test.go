package config_test

import (
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/config"
)

func TestLoadWorkerHTTP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string // on top of a complete worker environment
		noKeys  bool              // drop the WeChat Pay variables
		wantErr []string          // each must appear in the error
		want    config.HTTP
	}{
		{name: "off by default"},
		{
			name: "loopback dashboard without login, metrics",
			args: []string{"--dashboard", "127.0.0.1:8080", "--metrics", "127.0.0.1:9090"},
			want: config.HTTP{Dashboard: "127.0.0.1:8080", Metrics: "127.0.0.1:9090"},
		},
		{
			name: "open dashboard with login, read-only from the environment",
			args: []string{"--dashboard", "0.0.0.0:8080"},
			env:  map[string]string{"DASHBOARD_USER": "ops", "DASHBOARD_PASSWORD": "s3cret", "DASHBOARD_READ_ONLY": "true"},
			want: config.HTTP{Dashboard: "0.0.0.0:8080", DashboardUser: "ops", DashboardPassword: "s3cret", DashboardReadOnly: true},
		},
		{
			name: "read-only flag overrides the environment",
			args: []string{"--dashboard", "127.0.0.1:8080", "--dashboard-read-only=false"},
			env:  map[string]string{"DASHBOARD_READ_ONLY": "true"},
			want: config.HTTP{Dashboard: "127.0.0.1:8080"},
		},
		{
			name: "open dashboard without login is refused",
			args: []string{"--dashboard", "0.0.0.0:0"},
			wantErr: []string{
				"DASHBOARD_USER: required when --dashboard is not a loopback address",
				"DASHBOARD_PASSWORD: required when --dashboard is not a loopback address",
			},
		},
		{
			name: "allowed host names",
			args: []string{"--dashboard", "127.0.0.1:8080"},
			env:  map[string]string{"DASHBOARD_ALLOWED_HOSTS": " Dashboard.Example.com., ops.internal ,"},
			want: config.HTTP{Dashboard: "127.0.0.1:8080", DashboardAllowedHosts: []string{"dashboard.example.com", "ops.internal"}},
		},
		{
			name:    "allowed host with a scheme",
			env:     map[string]string{"DASHBOARD_ALLOWED_HOSTS": "https://dashboard.example.com"},
			wantErr: []string{"DASHBOARD_ALLOWED_HOSTS: entry 1 is not a host name (a name such as dashboard.example.com, without scheme, port or path)"},
		},
		{
			name:    "half a login",
			args:    []string{"--dashboard", "127.0.0.1:8080"},
			env:     map[string]string{"DASHBOARD_USER": "ops"},
			wantErr: []string{"DASHBOARD_PASSWORD: required when DASHBOARD_USER is set"},
		},
		{
			name:    "bad read-only value",
			env:     map[string]string{"DASHBOARD_READ_ONLY": "maybe"},
			wantErr: []string{`DASHBOARD_READ_ONLY: "maybe" is not true or false`},
		},
		{
			name:    "bad addresses",
			args:    []string{"--dashboard", "8080", "--metrics", "localhost"},
			wantErr: []string{`--dashboard: "8080" is not HOST:PORT`, `--metrics: "localhost" is not HOST:PORT`},
		},
		{
			name:    "same address twice",
			args:    []string{"--dashboard", "127.0.0.1:8080", "--metrics", "127.0.0.1:8080"},
			wantErr: []string{"--metrics: must differ from --dashboard"},
		},
		{
			name:   "dashboard only needs no WeChat Pay keys",
			args:   []string{"--dashboard-only", "--dashboard", "127.0.0.1:8080"},
			noKeys: true,
			want:   config.HTTP{Dashboard: "127.0.0.1:8080", DashboardOnly: true},
		},
		{
			name:    "dashboard only needs a dashboard",
			args:    []string{"--dashboard-only"},
			noKeys:  true,
			wantErr: []string{"--dashboard-only: needs --dashboard HOST:PORT"},
		},
		{
			name:    "working the queue still needs the keys",
			args:    []string{"--dashboard", "127.0.0.1:8080"},
			noKeys:  true,
			wantErr: []string{"WECHATPAY_MCHID: is required"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := keyDir(t)
			if tt.noKeys {
				env = map[string]string{"REDIS_URL": env["REDIS_URL"]}
			}
			for k, v := range tt.env {
				env[k] = v
			}
			w, err := config.LoadWorker(tt.args, lookup(env), io.Discard)
			if len(tt.wantErr) > 0 {
				require.Error(t, err)
				for _, want := range tt.wantErr {
					require.Contains(t, err.Error(), want)
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, w.HTTP)
		})
	}
}

package dashboard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/dashboard"
	"github.com/cardimport/cardimport/internal/testkit"
)

func TestCheckLogin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		addr           string
		user, password string
		wantErr        []string // each must appear; none means valid
	}{
		{name: "loopback without login", addr: "127.0.0.1:8080"},
		{name: "other loopback address", addr: "127.0.0.2:8080"},
		{name: "IPv6 loopback", addr: "[::1]:8080"},
		{name: "localhost", addr: "localhost:8080"},
		{name: "every interface with login", addr: "0.0.0.0:8080", user: "ops", password: "s3cret"},
		{
			name: "every interface without login", addr: "0.0.0.0:0",
			wantErr: []string{
				"DASHBOARD_USER: required when --dashboard is not a loopback address",
				"DASHBOARD_PASSWORD: required when --dashboard is not a loopback address",
			},
		},
		{name: "empty host is every interface", addr: ":8080", wantErr: []string{"DASHBOARD_PASSWORD: required when --dashboard is not a loopback address"}},
		{name: "IPv6 any", addr: "[::]:8080", wantErr: []string{"DASHBOARD_PASSWORD: required"}},
		{name: "LAN address", addr: "192.0.2.10:8080", wantErr: []string{"DASHBOARD_USER: required"}},
		{name: "name that does not resolve", addr: "dashboard.invalid:8080", wantErr: []string{"DASHBOARD_USER: required"}},
		{name: "password without user", addr: "127.0.0.1:8080", password: "s3cret", wantErr: []string{"DASHBOARD_USER: required when DASHBOARD_PASSWORD is set"}},
		{name: "user without password", addr: "0.0.0.0:8080", user: "ops", wantErr: []string{"DASHBOARD_PASSWORD: required when DASHBOARD_USER is set"}},
		{name: "colon in user", addr: "0.0.0.0:8080", user: "o:ps", password: "s3cret", wantErr: []string{"DASHBOARD_USER: must not contain ':'"}},
		{name: "no port", addr: "127.0.0.1", wantErr: []string{`--dashboard: "127.0.0.1" is not HOST:PORT`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := dashboard.CheckLogin(tt.addr, tt.user, tt.password)
			if len(tt.wantErr) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, want := range tt.wantErr {
				require.Contains(t, err.Error(), want)
			}
		})
	}
}

// TestNewRefusesAnOpenDashboard: the handler itself refuses to exist
// without a login on an address other hosts can reach.
func TestNewRefusesAnOpenDashboard(t *testing.T) {
	t.Parallel()
	r := testkit.NewRedis(t)
	_, err := dashboard.New(dashboard.Config{Redis: r.Opt, Addr: "0.0.0.0:0"})
	require.ErrorContains(t, err, "DASHBOARD_PASSWORD: required when --dashboard is not a loopback address")
}

// TestLoginRequired: with a login configured, the UI and every API answer
// 401 with a challenge unless the request carries exactly that login.
func TestLoginRequired(t *testing.T) {
	t.Parallel()
	b := setup(t, dashboard.Config{Addr: "0.0.0.0:0", User: "ops", Password: "correct horse"})
	id := b.archive(t, "1900000001-20261128-login1")
	tests := []struct {
		name           string
		user, password string
		login          bool
		want           int
	}{
		{name: "no login", want: http.StatusUnauthorized},
		{name: "wrong password", user: "ops", password: "correct horsE", login: true, want: http.StatusUnauthorized},
		{name: "wrong user", user: "admin", password: "correct horse", login: true, want: http.StatusUnauthorized},
		{name: "empty login", login: true, want: http.StatusUnauthorized},
		{name: "password prefix", user: "ops", password: "correct", login: true, want: http.StatusUnauthorized},
		{name: "right login", user: "ops", password: "correct horse", login: true, want: http.StatusOK},
	}
	for _, tt := range tests {
		for _, path := range []string{"/", "/api/queues", "/api/queues/" + b.queue + "/archived_tasks", "/static/js/main.5adda2da.chunk.js"} {
			t.Run(tt.name+" "+path, func(t *testing.T) {
				req, err := http.NewRequest(http.MethodGet, b.url+path, nil)
				require.NoError(t, err)
				if tt.login {
					req.SetBasicAuth(tt.user, tt.password)
				}
				var res *http.Response
				var body []byte
				for range 5 {
					res, err = http.DefaultClient.Do(req)
					require.NoError(t, err)
					body, _ = io.ReadAll(res.Body)
					res.Body.Close()
					// /api/queues lists every queue of the shared Redis;
					// asynqmon answers 500 when another test deletes one
					// between its listing and its reading of it.
					if res.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), "does not exist") {
						break
					}
				}
				require.Equal(t, tt.want, res.StatusCode, "%s", body)
				if tt.want == http.StatusUnauthorized {
					require.Equal(t, `Basic realm="cardimport dashboard", charset="UTF-8"`, res.Header.Get("WWW-Authenticate"))
					require.NotContains(t, string(body), b.queue)
				} else if strings.HasPrefix(path, "/api/queues/") {
					require.Contains(t, string(body), id)
				}
			})
		}
	}
}

// bundle is a dashboard on a test queue, served on 127.0.0.1.
type bundle struct {
	r     *testkit.Redis
	queue string
	url   string
	cfg   dashboard.Config
}

func setup(t *testing.T, cfg dashboard.Config) *bundle {
	t.Helper()
	b := &bundle{r: testkit.NewRedis(t)}
	b.queue = b.r.Queue(t)
	cfg.Redis = b.r.Opt
	h, err := dashboard.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close() })
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	b.url, b.cfg = srv.URL, cfg
	return b
}

// do sends a request with the bundle's login and returns the status and body.
func (b *bundle) do(t *testing.T, method, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, b.url+path, strings.NewReader(""))
	require.NoError(t, err)
	if b.cfg.User != "" {
		req.SetBasicAuth(b.cfg.User, b.cfg.Password)
	}
	return testkit.Fetch(t, req)
}

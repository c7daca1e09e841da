package worker_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/redisconn"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/worker"
	"github.com/cardimport/cardimport/results"
)

// TestDashboardServesRunsPage: the worker's dashboard serves the Runs page
// of its --queue beside asynqmon, behind the same login, and asynqmon's
// page links to it.
func TestDashboardServesRunsPage(t *testing.T) {
	t.Parallel()
	r := testkit.NewRedis(t)
	queue := r.Queue(t)
	rdb, err := redisconn.Client(r.Opt)
	require.NoError(t, err)
	defer rdb.Close()
	rs, err := results.New(rdb, queue)
	require.NoError(t, err)
	ctx := context.Background()
	run := results.NewRunID(time.Now())
	require.NoError(t, rs.StartRun(ctx, run))
	require.NoError(t, rs.CountEnqueued(ctx, run, 3, 0, 0))

	env := map[string]string{"REDIS_URL": r.URL, "DASHBOARD_USER": "ops", "DASHBOARD_PASSWORD": "pw"}
	ctx, cancel := context.WithCancel(ctx)
	logs, exited := &testkit.Buffer{}, make(chan struct{})
	var runErr error
	go func() {
		defer close(exited)
		runErr = worker.Run(ctx, []string{"--queue", queue, "--dashboard-only", "--dashboard", "127.0.0.1:0"},
			func(k string) string { return env[k] }, logs, logs)
	}()
	dash := "http://" + serverAddr(t, logs, "dashboard", exited)
	get := func(path string, login bool) (int, string) {
		req, err := http.NewRequest(http.MethodGet, dash+path, nil)
		require.NoError(t, err)
		if login {
			req.SetBasicAuth("ops", "pw")
		}
		return testkit.Fetch(t, req)
	}

	tests := []struct {
		name  string
		path  string
		login bool
		want  int
		body  string
	}{
		{name: "runs", path: "/runs", login: true, want: http.StatusOK, body: `href="/runs/` + run + `"`},
		{name: "run", path: "/runs/" + run, login: true, want: http.StatusOK, body: "queue <b>" + queue + "</b>"},
		{name: "asynqmon links to it", path: "/", login: true, want: http.StatusOK, body: `id="cardimport-runs-link" href="/runs"`},
		{name: "without the login", path: "/runs", want: http.StatusUnauthorized, body: "login required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := get(tt.path, tt.login)
			require.Equal(t, tt.want, code, body)
			require.Contains(t, body, tt.body)
		})
	}

	cancel()
	select {
	case <-exited:
		require.NoError(t, runErr)
	case <-time.After(30 * time.Second):
		t.Fatal("dashboard did not stop")
	}
}

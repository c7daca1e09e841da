package dashboard_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/dashboard"
	"github.com/cardimport/cardimport/tasks"
)

// archive puts an import task straight into the archive, as a refusal
// would, and returns its id.
func (b *bundle) archive(t *testing.T, no string) string {
	t.Helper()
	c := asynq.NewClient(b.r.Opt)
	defer c.Close()
	task, err := tasks.NewImportTask(tasks.Payload{CardID: "pbLatjvWOibDc5-TBnbUk1pD12o0", OpenID: openid, OutRequestNo: no}, tasks.WithQueue(b.queue))
	require.NoError(t, err)
	info, err := c.Enqueue(task)
	require.NoError(t, err)
	insp := asynq.NewInspector(b.r.Opt)
	defer insp.Close()
	require.NoError(t, insp.ArchiveTask(b.queue, info.ID))
	return info.ID
}

func (b *bundle) state(t *testing.T, id string) asynq.TaskState {
	t.Helper()
	insp := asynq.NewInspector(b.r.Opt)
	defer insp.Close()
	info, err := insp.GetTaskInfo(b.queue, id)
	require.NoError(t, err)
	return info.State
}

// TestReadOnly: a read-only dashboard shows the archive but refuses to run,
// delete or pause anything; the same calls work on a dashboard that is not
// read-only, so the refusal is the switch's doing.
func TestReadOnly(t *testing.T) {
	t.Parallel()
	for _, readOnly := range []bool{true, false} {
		t.Run(fmt.Sprintf("read-only %t", readOnly), func(t *testing.T) {
			t.Parallel()
			b := setup(t, dashboard.Config{Addr: "127.0.0.1:0", User: "ops", Password: "pw", ReadOnly: readOnly})
			runID := b.archive(t, "1900000001-20261128-ro0001")
			deleteID := b.archive(t, "1900000001-20261128-ro0002")

			code, body := b.do(t, http.MethodGet, "/api/queues/"+b.queue+"/archived_tasks")
			require.Equal(t, http.StatusOK, code)
			require.Contains(t, body, runID)

			mutations := []struct {
				method, path string
				want         int // when not read-only
			}{
				{http.MethodPost, "/api/queues/" + b.queue + "/archived_tasks/" + runID + ":run", http.StatusNoContent},
				{http.MethodDelete, "/api/queues/" + b.queue + "/archived_tasks/" + deleteID, http.StatusNoContent},
				{http.MethodPost, "/api/queues/" + b.queue + ":pause", http.StatusNoContent},
			}
			for _, m := range mutations {
				code, body := b.do(t, m.method, m.path)
				if readOnly {
					require.Equal(t, http.StatusMethodNotAllowed, code, "%s %s: %s", m.method, m.path, body)
					require.Contains(t, body, "read-only")
				} else {
					require.Equal(t, m.want, code, "%s %s: %s", m.method, m.path, body)
				}
			}
			if readOnly {
				require.Equal(t, asynq.TaskStateArchived, b.state(t, runID))
				require.Equal(t, asynq.TaskStateArchived, b.state(t, deleteID))
			} else {
				require.Equal(t, asynq.TaskStatePending, b.state(t, runID))
			}
		})
	}
}

// TestCrossSiteChangesRefused: a page on another site cannot make the
// operator's browser, which sends the login by itself, change the queue;
// the dashboard's own page can.
func TestCrossSiteChangesRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, dashboard.Config{Addr: "127.0.0.1:0", User: "ops", Password: "pw"})
	id := b.archive(t, "1900000001-20261128-csrf01")
	run := func(site string) int {
		req, err := http.NewRequest(http.MethodPost, b.url+"/api/queues/"+b.queue+"/archived_tasks/"+id+":run", nil)
		require.NoError(t, err)
		req.SetBasicAuth("ops", "pw")
		req.Header.Set("Sec-Fetch-Site", site)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	require.Equal(t, http.StatusForbidden, run("cross-site"))
	require.Equal(t, asynq.TaskStateArchived, b.state(t, id))
	require.Equal(t, http.StatusNoContent, run("same-origin"))
	require.Equal(t, asynq.TaskStatePending, b.state(t, id))
}

// TestDNSRebindingRefused: a page whose name its owner pointed at
// 127.0.0.1 after it loaded is, to the browser, of the same origin as a
// login-less loopback dashboard. Its requests name that page's host, and
// the dashboard answers only to its own: nothing is paused. Names the
// operator allowed, loopback and IP addresses pass.
func TestDNSRebindingRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, dashboard.Config{Addr: "127.0.0.1:0", AllowedHosts: []string{"dashboard.example.com"}})
	pause := func(host string) (int, string) {
		req, err := http.NewRequest(http.MethodPost, b.url+"/api/queues/"+b.queue+":pause", nil)
		require.NoError(t, err)
		req.Host = host
		// What the browser sends for a page it thinks is the dashboard's.
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	paused := func() bool {
		insp := asynq.NewInspector(b.r.Opt)
		defer insp.Close()
		info, err := insp.GetQueueInfo(b.queue)
		require.NoError(t, err)
		return info.Paused
	}
	b.archive(t, "1900000001-20261128-rebind") // the queue must exist
	for _, host := range []string{"rebind.evil.example", "rebind.evil.example:" + port(b.url), "localhost.evil.example", "127.0.0.1.nip.io"} {
		code, body := pause(host)
		require.Equal(t, http.StatusForbidden, code, host)
		require.Contains(t, body, "the Host header names a host this server does not answer to; add the name to DASHBOARD_ALLOWED_HOSTS")
		require.NotContains(t, body, "evil", "the refusal does not echo the Host header")
		require.False(t, paused(), "a rebound page paused the queue through %s", host)
	}
	code, body := b.do(t, http.MethodGet, "/api/queues")
	require.NotEqual(t, http.StatusForbidden, code, body)
	for _, host := range []string{"localhost:" + port(b.url), "LOCALHOST.", "[::1]:8080", "127.0.0.1", "192.0.2.7:8080", "Dashboard.Example.COM"} {
		req, err := http.NewRequest(http.MethodGet, b.url+"/", nil)
		require.NoError(t, err)
		req.Host = host
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode, host)
	}
	code, body = pause("dashboard.example.com")
	require.Equal(t, http.StatusNoContent, code, body)
	require.True(t, paused())
}

// port returns the port of a URL like http://127.0.0.1:4711.
func port(url string) string { return url[strings.LastIndexByte(url, ':')+1:] }

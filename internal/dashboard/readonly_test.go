package dashboard_test

import (
	"fmt"
	"net/http"
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

package dashboard_test

import (
	"context"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/dashboard"
	"github.com/cardimport/cardimport/internal/logging"
	"github.com/cardimport/cardimport/tasks"
)

// TestBrowserShowsTheQueue: headless Chromium logs in to the dashboard
// (credentials in the URL, which Chromium keeps for the page's own API
// calls), runs asynqmon's single-page app and renders the test queue with
// its pending import, the openid masked.
func TestBrowserShowsTheQueue(t *testing.T) {
	t.Parallel()
	chromium := lookChromium(t)
	b := setup(t, dashboard.Config{Addr: "127.0.0.1:0", User: "ops", Password: "correct horse"})
	c := asynq.NewClient(b.r.Opt)
	defer c.Close()
	task, err := tasks.NewImportTask(tasks.Payload{CardID: "pbLatjvWOibDc5-TBnbUk1pD12o0", OpenID: openid, OutRequestNo: "1900000001-20261128-chrome"}, tasks.WithQueue(b.queue))
	require.NoError(t, err)
	_, err = c.Enqueue(task)
	require.NoError(t, err)

	u, err := url.Parse(b.url + "/queues/" + url.PathEscape(b.queue) + "?status=pending")
	require.NoError(t, err)
	u.User = url.UserPassword(b.cfg.User, b.cfg.Password)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		// The page links web fonts on the Internet; the test reaches no
		// host but this one.
		"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
		"--user-data-dir="+t.TempDir(),
		// Virtual time runs the app until its API calls are answered and
		// rendered, up to 15 s of page time.
		"--virtual-time-budget=15000",
		"--dump-dom", u.String())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	dom, err := cmd.Output()
	require.NoError(t, err, "chromium: %s", stderr.String())

	page := string(dom)
	require.Contains(t, page, b.queue, "the queue is shown")
	require.Contains(t, page, "1900000001-20261128-chrome", "the pending task is listed")
	require.Contains(t, page, logging.MaskOpenID(openid), "its payload is shown masked")
	require.NotContains(t, page, openid)
}

package dashboard_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/dashboard"
)

// TestBrowserRunsPage: headless Chromium, logged in, opens the Runs page,
// follows the link to a finished run, reads its counts and refusal groups,
// presses Replay on the NO_AUTH group and reads the page's answer; the
// group's members are back in the queue. Screenshots of the run's page and
// of the list are saved as test artifacts, their paths in the log
// (go test -artifacts -outputdir DIR keeps them).
func TestBrowserRunsPage(t *testing.T) {
	t.Parallel()
	chromium := lookChromium(t)
	n := importNight(t)
	b := n.serve(t, dashboard.Config{User: "ops", Password: "correct horse"})
	const width = 1360
	c := startChrome(t, chromium, width, 900)
	login := base64.StdEncoding.EncodeToString([]byte(b.cfg.User + ":" + b.cfg.Password))
	c.do("Network.setExtraHTTPHeaders", map[string]any{"headers": map[string]string{"Authorization": "Basic " + login}})
	dir := t.ArtifactDir()

	c.navigate(b.url + "/runs")
	var state string
	c.eval(`document.querySelector("td .state").textContent`, &state)
	require.Equal(t, "settled", state)
	listShot := filepath.Join(dir, "runs-list.png")
	c.screenshot(listShot, width)
	t.Logf("screenshot of the runs list: %s", listShot)

	runPath := "/runs/" + n.run.ID
	c.click(fmt.Sprintf(`a[href=%q]`, runPath))
	c.waitFor(fmt.Sprintf(`location.pathname === %q && document.readyState === "complete"`, runPath))
	var tiles, groups map[string]string
	c.eval(`Object.fromEntries([...document.querySelectorAll(".tile")].map(t => [t.querySelector("small").textContent, t.querySelector("b").textContent]))`, &tiles)
	require.Equal(t, map[string]string{
		"Enqueued": "21", "Imported": "12", "Already member": "2", "Refused": "7",
		"Waiting": "0", "Duplicates": "1", "Invalid": "1",
	}, tiles)
	c.eval(`Object.fromEntries([...document.querySelectorAll("#refusals tbody tr")].map(r => [r.querySelector(".code").textContent, r.querySelector("td.num b").textContent]))`, &groups)
	require.Equal(t, map[string]string{"NO_AUTH": "3", "INVALID_REQUEST": "2", "NOT_FOUND": "1", "PARAM_ERROR": "1"}, groups)
	for _, no := range n.refused["NO_AUTH"] {
		require.Equal(t, asynq.TaskStateArchived, n.state(t, no))
	}

	c.click(`button.replay[data-group="NO_AUTH"]`)
	c.waitFor(`document.querySelector(".flash") && document.readyState === "complete"`)
	var flash, inQueue string
	c.eval(`document.querySelector(".flash").textContent`, &flash)
	require.Contains(t, flash, "Replay of NO_AUTH: replayed=3 skipped=0 failed=0")
	c.eval(`[...document.querySelectorAll("#refusals tbody tr")].find(r => r.querySelector(".code").textContent === "NO_AUTH").querySelector(".inqueue").textContent`, &inQueue)
	require.Equal(t, "3 back in the queue", inQueue)
	for _, no := range n.refused["NO_AUTH"] {
		require.Equal(t, asynq.TaskStatePending, n.state(t, no), "%s is back in the queue", no)
	}
	for _, no := range n.refused["INVALID_REQUEST"] {
		require.Equal(t, asynq.TaskStateArchived, n.state(t, no), "%s was not in the group", no)
	}
	runShot := filepath.Join(dir, "runs-page.png")
	c.screenshot(runShot, width)
	t.Logf("screenshot of the run's page after Replay: %s", runShot)
}

// lookChromium finds Debian's chromium, which .ci/run installs: CI (where
// REDIS_URL is set) must run the browser tests, a bare machine skips them.
func lookChromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a browser")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("REDIS_URL") != "" {
			t.Fatal("chromium is not installed; .ci/run installs Debian's chromium, CI must run this test")
		}
		t.Skip("chromium is not installed (apt-get install chromium); CI runs this test")
	}
	return chromium
}

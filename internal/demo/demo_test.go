package demo_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/demo"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/results"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

// cleanEnv is the test's environment without anything that configures a
// worker: the demo must need none of it.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name == "REDIS_URL" || name == "QUEUE" || strings.HasPrefix(name, "WECHATPAY_") || strings.HasPrefix(name, "DASHBOARD_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

var summaryField = regexp.MustCompile(`(\w+)=(\d+)`)

// parseSummary reads a "demo: imported=N …" line.
func parseSummary(line string) (map[string]int, bool) {
	rest, ok := strings.CutPrefix(line, "demo: imported=")
	if !ok {
		return nil, false
	}
	got := map[string]int{}
	for _, m := range summaryField.FindAllStringSubmatch("imported="+rest, -1) {
		got[m[1]], _ = strconv.Atoi(m[2])
	}
	return got, true
}

// TestDemoSmoke runs `worker --demo` as a newcomer would, with no Redis and
// no credentials configured, waits until its summary shows members
// imported and refusals archived, then stops it with SIGTERM.
func TestDemoSmoke(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts the demo process")
	}
	bin, err := testkit.Command("worker")
	require.NoError(t, err)
	// A free port, so the test never meets another program on 8080.
	cmd := exec.Command(bin, "--demo", "--dashboard", "127.0.0.1:0")
	cmd.Env = cleanEnv()
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	lines := make(chan string, 64)
	var out strings.Builder
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()

	// 20 s is the promise to a newcomer; a loaded CI machine under -race
	// gets more.
	deadline := time.After(90 * time.Second)
	var last map[string]int
	var dashboardURL string
	for last["imported"] == 0 || last["archived"] == 0 {
		select {
		case line, ok := <-lines:
			require.True(t, ok, "demo ended early:\n%s\nstderr:\n%s", out.String(), stderr.String())
			out.WriteString(line + "\n")
			if s, ok := parseSummary(line); ok {
				last = s
			}
			if v, ok := strings.CutPrefix(line, "dashboard: "); ok {
				dashboardURL, _, _ = strings.Cut(v, " ")
			}
		case <-deadline:
			t.Fatalf("no imported and archived members within 90s:\n%s\nstderr:\n%s", out.String(), stderr.String())
		}
	}
	require.Contains(t, out.String(), "in memory only")
	require.Regexp(t, `(?m)^  run=demo-\S+\n  enqueued=298 duplicates=0 invalid=2$`, out.String(), "the run, then enqueue's summary")

	// The dashboard shows what the summary said: asynqmon's own API.
	require.True(t, strings.HasPrefix(dashboardURL, "http://127.0.0.1:"), "dashboard address: %q", dashboardURL)
	res, err := http.Get(dashboardURL + "api/queues")
	require.NoError(t, err)
	var queues struct {
		Queues []struct {
			Queue     string `json:"queue"`
			Completed int    `json:"completed"`
			Archived  int    `json:"archived"`
		} `json:"queues"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&queues))
	res.Body.Close()
	require.Len(t, queues.Queues, 1)
	require.Equal(t, "membercard", queues.Queues[0].Queue)
	require.GreaterOrEqual(t, queues.Queues[0].Completed, last["imported"]+last["already_member"])
	require.GreaterOrEqual(t, queues.Queues[0].Archived, last["archived"])
	require.Positive(t, queues.Queues[0].Archived)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	stopDeadline := time.After(30 * time.Second)
	for open := true; open; {
		select {
		case line, ok := <-lines:
			open = ok
			out.WriteString(line + "\n")
		case <-stopDeadline:
			t.Fatalf("demo did not stop within 30s of SIGTERM:\n%s", out.String())
		}
	}
	// Standard output is closed: the process has exited.
	require.NoError(t, cmd.Wait(), "demo exit after SIGTERM:\n%s\nstderr:\n%s", out.String(), stderr.String())
	require.Contains(t, out.String(), "demo: stopped after")
}

// exportLine is the demo's last word on its run: where its results are.
var exportLine = regexp.MustCompile(`^demo: its results, one line a member, while the demo runs: REDIS_URL=(redis://\S+) go run \./cmd/enqueue results export --run (\S+)$`)

// TestDemoOutcomesMatchTheSample runs the demo in the test's process until
// its run settled: the sample's make-up, through faults, rate limits and
// lost answers, ends exactly as the banner announced, in asynq's tasks and
// in the run's counts alike, and the demo says where to export the results,
// which hold one line per member.
func TestDemoOutcomesMatchTheSample(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the whole demo")
	}
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- demo.Run(ctx, []string{"--demo", "--dashboard", "127.0.0.1:0"}, func(string) string { return "" }, pw, io.Discard)
		pw.Close()
	}()
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var out strings.Builder
	var all, runLine string
	var export []string
	deadline := time.After(120 * time.Second)
	for export == nil {
		select {
		case line, ok := <-lines:
			require.True(t, ok, "demo ended early:\n%s", out.String())
			out.WriteString(line + "\n")
			switch {
			case strings.HasPrefix(line, "demo: all "):
				all = line
			case strings.HasPrefix(strings.TrimSpace(line), "run="):
				runLine = strings.TrimSpace(line)
			}
			export = exportLine.FindStringSubmatch(line)
		case <-deadline:
			t.Fatalf("the run did not settle within 120s:\n%s", out.String())
		}
	}

	// Enqueue printed the run, the one the export command names.
	redisURL, runID := export[1], export[2]
	require.Equal(t, "run="+runID, runLine, "enqueue's run line:\n%s", out.String())
	require.Regexp(t, `^demo-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}$`, runID)
	require.Contains(t, out.String(), "  run="+runID+"\n  enqueued=298 duplicates=0 invalid=2\n", "run=ID just before enqueue's summary")

	require.Contains(t, all, "demo: all 298 members reached an end")
	got, ok := parseSummary("demo: " + all[strings.Index(all, "imported="):])
	require.True(t, ok, all)
	require.Equal(t, map[string]int{"imported": 250, "already_member": 20, "retrying": 0, "archived": 28, "waiting": 0, "running": 0}, got)

	// The run's counts, read from the demo's Redis while it still runs,
	// are the summary's, and the export holds each member once.
	opt, err := redis.ParseURL(redisURL)
	require.NoError(t, err)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	rs, err := results.New(rdb, "membercard")
	require.NoError(t, err)
	run, err := rs.Run(ctx, runID)
	require.NoError(t, err)
	require.True(t, run.Settled())
	require.Equal(t, results.Run{ID: runID, Enqueued: 298, Invalid: 2,
		Imported: int64(got["imported"]), AlreadyMember: int64(got["already_member"]), Dead: int64(got["archived"]),
		StartedAt: run.StartedAt, Closed: true, SettledAt: run.SettledAt}, run)
	require.Contains(t, out.String(), fmt.Sprintf("demo: run %s settled: enqueued=298 duplicates=0 invalid=2 imported=250 already_member=20 dead=28\n", runID))
	outcomes := map[string]int{}
	members := map[string]bool{}
	require.NoError(t, rs.Export(ctx, results.Filter{Run: runID}, func(e results.Event) error {
		require.False(t, members[e.OutRequestNo], "%s exported twice", e.OutRequestNo)
		members[e.OutRequestNo] = true
		outcomes[e.Outcome]++
		return nil
	}))
	require.Equal(t, map[string]int{results.OutcomeImported: 250, results.OutcomeAlreadyMember: 20, results.OutcomeDead: 28}, outcomes)

	cancel()
	for line := range lines { // until the pipe closes: the demo has returned
		out.WriteString(line + "\n")
	}
	require.NoError(t, <-done)
	require.Contains(t, out.String(), "sandbox: requests=")
	require.Regexp(t, `imports=250 replays=\d+`, out.String(), "no member imported twice")
}

func TestRequested(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want bool
	}{
		{args: nil, want: false},
		{args: []string{"--demo"}, want: true},
		{args: []string{"-demo"}, want: true},
		{args: []string{"--concurrency", "2", "--demo"}, want: true},
		{args: []string{"--demo=true"}, want: true},
		{args: []string{"-demo=1"}, want: true},
		{args: []string{"--demo=T"}, want: true},
		{args: []string{"--demo=false"}, want: false},
		{args: []string{"--demo=0"}, want: false},
		{args: []string{"--demo=yes"}, want: false},
		{args: []string{"--demo=false", "--demo"}, want: true},
		{args: []string{"--demonstrate"}, want: false},
		{args: []string{"---demo"}, want: false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			require.Equal(t, tt.want, demo.Requested(tt.args))
		})
	}
}

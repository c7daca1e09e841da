package faultsuite_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/redisconn/redisconntest"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/results"
)

// keysMembers is how many importable members each queue of everyCommand
// gets, beside keysRefused dead ones and keysIntake through the intake.
const (
	keysMembers = 200
	keysRefused = 10
	keysIntake  = 5
)

// listening waits until p logged message (with server name, when not
// empty) and returns the address it logged.
func listening(t *testing.T, p *testkit.Process, message, server string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		sc := bufio.NewScanner(strings.NewReader(p.Out.String()))
		for sc.Scan() {
			var line struct{ Message, Server, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == message && (server == "" || line.Server == server) {
				return line.Addr
			}
		}
		require.True(t, time.Now().Before(deadline), "%s did not log %q within 30 s:\n%s", p.Path, message, p.Out.String())
		time.Sleep(20 * time.Millisecond)
	}
}

// intakeMembers posts keysIntake more members of q to the intake p, into
// a run of their own, and waits until the intake reports them imported.
func intakeMembers(t *testing.T, p *testkit.Process, q *failoverQueue) {
	t.Helper()
	base := "http://" + listening(t, p, "intake listening", "")
	var body strings.Builder
	body.WriteString("[")
	var nos []string
	for i := range keysIntake {
		no := fmt.Sprintf("1900000001-20261212-%s-intake-%02d", q.name, i)
		nos = append(nos, no)
		if i > 0 {
			body.WriteString(",")
		}
		fmt.Fprintf(&body, `{"card_id":%q,"openid":"oFaUlT8uMuAJO_M2px9%09d","out_request_no":%q}`, card, i, no)
	}
	body.WriteString("]")
	res, err := http.Post(base+"/v1/imports?run=intake-"+q.name, "application/json", strings.NewReader(body.String()))
	require.NoError(t, err)
	answer, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, "%s", answer)
	require.Contains(t, string(answer), fmt.Sprintf(`"enqueued":%d`, keysIntake))
	for deadline := time.Now().Add(time.Minute); ; {
		res, err := http.Get(base + "/v1/runs/intake-" + q.name)
		require.NoError(t, err)
		var run results.Run
		require.NoError(t, json.NewDecoder(res.Body).Decode(&run))
		res.Body.Close()
		if run.Imported == keysIntake {
			break
		}
		require.True(t, time.Now().Before(deadline), "the intake's run: %+v", run)
		time.Sleep(50 * time.Millisecond)
	}
	res, err = http.Get(base + "/v1/imports/" + nos[0])
	require.NoError(t, err)
	answer, _ = io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, "%s", answer)
	require.Contains(t, string(answer), "imported")
}

// dashboard reads the dashboard-only worker p: asynqmon's list of queues
// and the Runs page.
func dashboard(t *testing.T, p *testkit.Process, q *failoverQueue) {
	t.Helper()
	base := "http://" + listening(t, p, "http server listening", "dashboard")
	res, err := http.Get(base + "/api/queues")
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, "%s", body)
	require.Contains(t, string(body), q.queue)
	res, err = http.Get(base + "/runs")
	require.NoError(t, err)
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, "%s", body)
	require.Contains(t, string(body), q.run)
}

// everyCommand runs a full import on each of queues of r through every
// command that opens Redis — a worker (with its metrics and webhooks on),
// `enqueue file --run --wait`, `enqueue dead list`, `enqueue runs show`,
// `enqueue results export` and `results follow`, the intake (POST
// /v1/imports, GET /v1/runs and /v1/imports) and `worker
// --dashboard-only` — checking what each answers, until every webhook is
// delivered. It returns the queues and every process's output.
func everyCommand(t *testing.T, r *testkit.Redis, prefix string, queues []string) ([]*failoverQueue, []*testkit.Buffer) {
	t.Helper()
	var delivered atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		delivered.Add(1)
	}))
	t.Cleanup(hook.Close)

	var outputs []*testkit.Buffer
	start := func(name string, vars map[string]string, args ...string) *testkit.Process {
		p := testkit.Start(t, name, testkit.Environ(vars), args...)
		outputs = append(outputs, p.Out)
		return p
	}
	var qs []*failoverQueue
	for i, name := range queues {
		q := newFailoverQueue(t, r, fmt.Sprintf("%s-%c", prefix, 'a'+i), name, keysMembers, keysRefused)
		q.vars["WEBHOOK_URL"] = hook.URL
		q.vars["WEBHOOK_SECRET"] = "faultsuite-webhook-secret"
		q.startWorkers(1, "--metrics", "127.0.0.1:0")
		qs = append(qs, q)
	}
	for _, q := range qs {
		q.mu.Lock()
		outputs = append(outputs, q.workers[0].Out)
		q.mu.Unlock()

		follower := &lineCounter{}
		bin, err := testkit.Command("enqueue")
		require.NoError(t, err)
		cmd := exec.Command(bin, "results", "follow", "--group", "registration", "--consumer", "reg-1")
		cmd.Env, cmd.Stdout, cmd.Stderr = testkit.Environ(q.vars), follower, follower
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

		out, code := q.enqueue("file", "--run", q.run, "--wait", q.file)
		require.Equal(t, 3, code, "--wait exits 3 with dead members:\n%s", out)
		require.True(t, strings.HasSuffix(strings.TrimSpace(out), fmt.Sprintf("imported=%d already_member=0 dead=%d", keysMembers, keysRefused)), out)

		out, _ = q.enqueue("dead", "list")
		require.Equal(t, keysRefused, strings.Count(out, "INVALID_REQUEST"), "enqueue dead list:\n%s", out)
		out, _ = q.enqueue("runs", "show", "--json", q.run)
		var run results.Run
		require.NoError(t, json.Unmarshal([]byte(out), &run), out)
		require.Equal(t, int64(keysMembers), run.Imported)
		out, _ = q.enqueue("results", "export", "--run", q.run)
		require.Len(t, strings.Split(strings.TrimSpace(out), "\n"), 1+keysMembers+keysRefused, "results export: a header and a line a member")

		intakeMembers(t, start("enqueue", q.vars, "serve", "--addr", "127.0.0.1:0"), q)
		dashboard(t, start("worker", map[string]string{"REDIS_URL": q.vars["REDIS_URL"], "QUEUE": q.queue}, "--dashboard-only", "--dashboard", "127.0.0.1:0"), q)

		for deadline := time.Now().Add(time.Minute); follower.lines() < keysMembers+keysRefused; {
			require.True(t, time.Now().Before(deadline), "%s: the follower wrote %d lines", q.name, follower.lines())
			time.Sleep(20 * time.Millisecond)
		}
	}
	outcomes := int64(len(qs) * (keysMembers + keysRefused + keysIntake))
	for deadline := time.Now().Add(time.Minute); delivered.Load() < outcomes; {
		require.True(t, time.Now().Before(deadline), "webhooks delivered %d of at least %d", delivered.Load(), outcomes)
		time.Sleep(20 * time.Millisecond)
	}
	for _, out := range outputs {
		require.NotContains(t, out.String(), "CROSSSLOT")
	}
	return qs, outputs
}

// TestSentinelCommands: every command that opens Redis works through
// redis-sentinel:// (a master, a replica, one sentinel), as
// TestClusterKeys has them work through redis-cluster://.
func TestSentinelCommands(t *testing.T) {
	needFaults(t)
	sg := redisconntest.StartSentinel(t, redisconntest.SentinelConfig{Replicas: 1, Sentinels: 1})
	r := &testkit.Redis{Opt: sg.Opt, URL: sg.URL}
	qs, _ := everyCommand(t, r, "sentinel-cmd", []string{"sentinel-commands"})
	t.Logf("faults: sentinel commands: worker, enqueue file --wait, dead list, runs show, results export and follow, the intake and --dashboard-only through redis-sentinel:// (master %q): %d members imported, %d dead",
		redisconntest.SentinelMaster, qs[0].srv.Members(), len(qs[0].refused))
}

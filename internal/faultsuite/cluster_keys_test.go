package faultsuite_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/buildtest"
	"github.com/cardimport/cardimport/internal/logtest"
	"github.com/cardimport/cardimport/internal/proctest"
	"github.com/cardimport/cardimport/internal/redisconn/redisconntest"
	"github.com/cardimport/cardimport/internal/redistest"
	"github.com/cardimport/cardimport/results"
)

// keysMembers is how many importable members each queue of
// TestClusterKeys gets, beside keysRefused dead ones and the intake's.
const (
	keysMembers = 200
	keysRefused = 10
	keysIntake  = 5
)

// asynqGlobal are asynq's keys that belong to no queue: the set of queue
// names, and the servers' and workers' heartbeats (asynq:servers:{ID} and
// asynq:workers:{ID}, tagged with the server's ID). No script or
// transaction of asynq's spans them and a queue's keys.
func asynqGlobal(key string) bool {
	switch key {
	case "asynq:queues", "asynq:servers", "asynq:workers", "asynq:schedulers":
		return true
	}
	for _, p := range []string{"asynq:servers:{", "asynq:workers:{", "asynq:schedulers:{", "asynq:scheduler_history:"} {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// TestClusterKeys: a full run on a real three-master Redis Cluster, every
// command through redis-cluster:// — on each of three queues, one a
// master: a worker (with its metrics and webhooks on), `enqueue file
// --run --wait`, `enqueue dead list`, `enqueue runs show`, `enqueue
// results export` and `results follow`, the intake (POST /v1/imports, GET
// /v1/runs and /v1/imports) and `worker --dashboard-only` — then SCAN
// every master and check each key: every key of a queue carries the queue
// as its hash tag, so it shares the queue's slot (and master) with
// asynq's; the only others are asynq's own global keys. A key of the
// project's own on another slot fails the test, as does a CROSSSLOT error
// in any process's output. It shows where each queue lands.
func TestClusterKeys(t *testing.T) {
	needFaults(t)
	c := redisconntest.StartCluster(t, 3, 0)
	r := &redistest.Redis{Opt: c.Opt, URL: c.URL}
	names := c.SpreadQueues(t, "keys")

	var delivered atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		delivered.Add(1)
	}))
	t.Cleanup(hook.Close)

	var outputs []*logtest.Buffer
	start := func(q *failoverQueue, name string, vars map[string]string, args ...string) *proctest.Process {
		p := proctest.Start(t, name, proctest.Environ(vars), args...)
		outputs = append(outputs, p.Out)
		return p
	}
	var qs []*failoverQueue
	for i, name := range names {
		q := newFailoverQueue(t, r, fmt.Sprintf("keys-%c", 'a'+i), name, keysMembers, keysRefused)
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
		bin, err := buildtest.Command("enqueue")
		require.NoError(t, err)
		cmd := exec.Command(bin, "results", "follow", "--group", "registration", "--consumer", "reg-1")
		cmd.Env, cmd.Stdout, cmd.Stderr = proctest.Environ(q.vars), follower, follower
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

		intakeMembers(t, start(q, "enqueue", q.vars, "serve", "--addr", "127.0.0.1:0"), q)
		dashboard(t, start(q, "worker", map[string]string{"REDIS_URL": q.vars["REDIS_URL"], "QUEUE": q.queue}, "--dashboard-only", "--dashboard", "127.0.0.1:0"), q)

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

	// Every key on every master.
	slots := map[string]int{}
	for _, q := range qs {
		slots[q.queue] = redisconntest.Slot(q.queue)
		require.Equal(t, c.Slot(t, "asynq:{"+q.queue+"}:pending"), slots[q.queue], "slotOf agrees with CLUSTER KEYSLOT")
	}
	type family struct{ tasks, asynq, dead, results, guard, webhook, other int }
	perQueue := map[string]*family{}
	var global, bad []string
	total, perServer := 0, 0
	for _, m := range c.Masters(t) {
		node := m.Client()
		iter := node.Scan(context.Background(), 0, "*", 1000).Iterator()
		for iter.Next(context.Background()) {
			key := iter.Val()
			total++
			if asynqGlobal(key) {
				if !strings.Contains(key, "{") {
					global = append(global, fmt.Sprintf("%s on %s", key, m.Addr))
				} else {
					perServer++
				}
				continue
			}
			q := queueOfKey(key, names)
			if q == "" || redisconntest.Slot(key) != slots[q] {
				// One line per family: the key up to its tag's end.
				family := key
				if end := strings.IndexByte(key, '}'); end >= 0 {
					family = key[:end+1] + "…"
				}
				if line := fmt.Sprintf("%s: slot %d on %s", family, redisconntest.Slot(key), m.Addr); !slices.Contains(bad, line) {
					bad = append(bad, line)
				}
				continue
			}
			f := perQueue[q]
			if f == nil {
				f = &family{}
				perQueue[q] = f
			}
			switch rest := key[strings.Index(key, "}")+1:]; {
			case strings.HasPrefix(key, "asynq:") && strings.HasPrefix(rest, ":t:"):
				f.tasks++
			case strings.HasPrefix(key, "asynq:") && strings.Contains(key, "webhooks"):
				f.webhook++
			case strings.HasPrefix(key, "asynq:"):
				f.asynq++
			case strings.HasPrefix(rest, ":dead"):
				f.dead++
			case strings.HasPrefix(rest, ":results") || strings.HasPrefix(rest, ":run"):
				f.results++
			case strings.HasPrefix(key, "rate:") || rest == ":circuit" || rest == ":slowdown" || rest == ":wechatpay":
				f.guard++
			default:
				f.other++
			}
		}
		require.NoError(t, iter.Err())
		_ = node.Close()
	}
	sort.Strings(bad)
	require.Empty(t, bad, "keys outside their queue's slot, or of no queue")
	for _, out := range outputs {
		require.NotContains(t, out.String(), "CROSSSLOT")
	}
	guard := 0
	for _, q := range qs {
		f := perQueue[q.queue]
		require.NotNil(t, f, q.queue)
		require.GreaterOrEqual(t, f.tasks, keysMembers+keysRefused+keysIntake, "%s: a task hash a member", q.queue)
		require.Positive(t, f.dead, "%s: dead letters", q.queue)
		require.Positive(t, f.results, "%s: runs and outcomes", q.queue)
		require.Positive(t, f.webhook, "%s: the webhook queue", q.queue)
		guard += f.guard
		master := c.MasterOfSlot(t, slots[q.queue])
		t.Logf("faults: cluster keys: queue %s: slot %d on master %s: %d task hashes, %d other asynq keys, %d dead-letter keys, %d run and outcome keys, %d guard keys, %d webhook queue keys, %d others",
			q.queue, slots[q.queue], master.Addr, f.tasks, f.asynq, f.dead, f.results, f.guard, f.webhook, f.other)
	}
	// The rate limit's key expires soon after the last import: the last
	// queue's at least is still there.
	require.Positive(t, guard, "the guard's rate limit")
	slices.Sort(global)
	t.Logf("faults: cluster keys: %d keys on 3 masters, every one of a queue in its queue's slot; asynq's global keys: %s, and %d of the servers' own (asynq:servers:{ID}, asynq:workers:{ID}) spread by their IDs",
		total, strings.Join(global, ", "), perServer)
}

// queueOfKey is the queue whose hash tag key carries, "" for none.
func queueOfKey(key string, queues []string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return ""
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end <= 0 {
		return ""
	}
	tag := key[open+1 : open+1+end]
	if slices.Contains(queues, tag) {
		return tag
	}
	return ""
}

// listening waits until p logged message (with server name, when not
// empty) and returns the address it logged.
func listening(t *testing.T, p *proctest.Process, message, server string) string {
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
func intakeMembers(t *testing.T, p *proctest.Process, q *failoverQueue) {
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
func dashboard(t *testing.T, p *proctest.Process, q *failoverQueue) {
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

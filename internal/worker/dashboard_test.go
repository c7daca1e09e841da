package worker_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/internal/logging"
	"github.com/cardimport/cardimport/internal/metrics"
	"github.com/cardimport/cardimport/internal/metrics/metricstest"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
	"github.com/cardimport/cardimport/internal/worker"
	"github.com/cardimport/cardimport/tasks"
)

// serverAddr waits for the worker's log line saying that side server name
// listens, and returns its address.
func serverAddr(t *testing.T, logs *testkit.Buffer, name string, exited <-chan struct{}) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		for sc.Scan() {
			var line struct{ Message, Server, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "http server listening" && line.Server == name {
				return line.Addr
			}
		}
		select {
		case <-exited:
			t.Fatalf("worker ended:\n%s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s server not listening within 30s:\n%s", name, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dashboardRun is a worker with its dashboard and metrics, importing into
// an emulator from a test queue.
type dashboardRun struct {
	srv         *wechatpaytest.Server
	r           *testkit.Redis
	queue       string
	client      *asynq.Client
	insp        *asynq.Inspector
	logs        *testkit.Buffer
	exited      chan struct{} // closed when Run has returned err
	err         error
	cancel      context.CancelFunc
	dash, mtrcs string // base URLs
	user, pass  string
}

func startDashboardRun(t *testing.T, extraArgs ...string) *dashboardRun {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a worker with its dashboard")
	}
	// A database of its own: the dashboard's overview pages read every
	// queue on the server, and other tests delete theirs meanwhile.
	d := &dashboardRun{srv: wechatpaytest.NewServer(wechatpaytest.TestKeys(t)), r: testkit.NewPrivateRedis(t), user: "ops", pass: "correct horse battery"}
	t.Cleanup(d.srv.Close)
	d.queue = d.r.Queue(t)
	env := testkit.WorkerEnv(t, d.srv, d.r, d.queue)
	env["DASHBOARD_USER"], env["DASHBOARD_PASSWORD"] = d.user, d.pass
	d.client = asynq.NewClient(d.r.Opt)
	t.Cleanup(func() { _ = d.client.Close() })
	d.insp = asynq.NewInspector(d.r.Opt)
	t.Cleanup(func() { _ = d.insp.Close() })

	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.logs, d.exited = &testkit.Buffer{}, make(chan struct{})
	args := append([]string{"--queue", d.queue, "--concurrency", "4", "--retry-min-delay", "50ms", "--retry-max-delay", "200ms",
		"--shutdown-timeout", "2s", "--dashboard", "127.0.0.1:0", "--metrics", "127.0.0.1:0"}, extraArgs...)
	go func() {
		defer close(d.exited)
		d.err = worker.Run(ctx, args, func(k string) string { return env[k] }, d.logs, d.logs)
	}()
	t.Cleanup(func() { d.stop(t) })
	d.dash = "http://" + serverAddr(t, d.logs, "dashboard", d.exited)
	d.mtrcs = "http://" + serverAddr(t, d.logs, "metrics", d.exited)
	return d
}

// stop cancels the worker and waits for it to return.
func (d *dashboardRun) stop(t *testing.T) {
	if d.cancel == nil {
		return
	}
	d.cancel()
	d.cancel = nil
	select {
	case <-d.exited:
		require.NoError(t, d.err, "worker stops cleanly")
	case <-time.After(60 * time.Second):
		t.Fatal("worker did not stop")
	}
}

func (d *dashboardRun) enqueue(t *testing.T, p tasks.Payload, opts ...asynq.Option) string {
	t.Helper()
	task, err := tasks.NewImportTask(p, tasks.WithQueue(d.queue))
	require.NoError(t, err)
	info, err := d.client.Enqueue(task, opts...)
	require.NoError(t, err)
	return info.ID
}

func (d *dashboardRun) waitState(t *testing.T, id string, state asynq.TaskState) *asynq.TaskInfo {
	t.Helper()
	return testkit.WaitState(t, d.insp, d.queue, id, state, 60*time.Second, d.logs)
}

// api sends a request to the dashboard with the login and returns the
// status and body.
func (d *dashboardRun) api(t *testing.T, method, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, d.dash+path, nil)
	require.NoError(t, err)
	req.SetBasicAuth(d.user, d.pass)
	return testkit.Fetch(t, req)
}

func member(kind string, i int) tasks.Payload {
	return tasks.Payload{CardID: card, OpenID: fmt.Sprintf("oUpF8uMuAJO_Dash%s%08d", kind, i), OutRequestNo: fmt.Sprintf("1900000001-20261128-d%s%04d", kind, i)}
}

// TestDashboardShowsNoOpenID runs real imports through a worker and the
// emulator — imports, already-members, refusals (one whose WeChat message
// names the member), transient and systemic faults, a scheduled and an
// in-flight import, payloads that are not imports — then reads every JSON
// answer of the dashboard's API, with the login, and the metrics: no raw
// openid anywhere, the masked one where a payload is shown, and the
// metrics count each outcome.
func TestDashboardShowsNoOpenID(t *testing.T) {
	t.Parallel()
	d := startDashboardRun(t)
	var openids []string
	track := func(p tasks.Payload) tasks.Payload { openids = append(openids, p.OpenID); return p }

	// WeChat echoes the member in its refusal.
	named := track(member("named", 0))
	d.srv.FailNext(1, http.StatusBadRequest, "PARAM_ERROR", "openid "+named.OpenID+" 与 appid 不匹配")
	d.waitState(t, d.enqueue(t, named), asynq.TaskStateArchived)

	// The bulk: two of its calls meet a transient fault first.
	d.srv.FailNext(2, http.StatusInternalServerError, "SYSTEM_ERROR", "系统繁忙，请稍后重试")
	var completed, archived []string
	for i := range 3 {
		completed = append(completed, d.enqueue(t, track(member("ok", i))))
	}
	completed = append(completed, d.enqueue(t, track(tasks.Payload{CardID: card, OpenID: wechatpaytest.OpenIDPrefixMember + "MuAJO_Dash0001", OutRequestNo: "1900000001-20261128-dmember"})))
	noAuth := track(member("noauth", 0))
	noAuth.CardID = wechatpaytest.CardIDPrefixNoAuth + "WOibDc5-TBnbUk1"
	archived = append(archived, d.enqueue(t, noAuth))
	archived = append(archived, d.enqueue(t, track(tasks.Payload{CardID: card, OpenID: wechatpaytest.OpenIDPrefixNoTrade + "MuAJO_Dash0001", OutRequestNo: "1900000001-20261128-dnotrade"})))
	// Payloads no import can use: a bare openid, and an openid over
	// WeChat's 128 characters.
	rawOpenID := track(member("raw", 0)).OpenID
	info, err := d.client.Enqueue(asynq.NewTask(tasks.TypeImport, []byte(rawOpenID)), asynq.Queue(d.queue), asynq.TaskID("1900000001-20261128-draw"), asynq.MaxRetry(3))
	require.NoError(t, err)
	archived = append(archived, info.ID)
	long := track(member("long", 0))
	long.OpenID += strings.Repeat("x", tasks.MaxOpenIDLen)
	openids[len(openids)-1] = long.OpenID
	longJSON, err := json.Marshal(long)
	require.NoError(t, err)
	info, err = d.client.Enqueue(asynq.NewTask(tasks.TypeImport, longJSON), asynq.Queue(d.queue), asynq.TaskID(long.OutRequestNo), asynq.MaxRetry(3))
	require.NoError(t, err)
	archived = append(archived, info.ID)
	scheduledID := d.enqueue(t, track(member("later", 0)), asynq.ProcessIn(time.Hour))
	for _, id := range completed {
		d.waitState(t, id, asynq.TaskStateCompleted)
	}
	for _, id := range archived {
		d.waitState(t, id, asynq.TaskStateArchived)
	}

	q := "/api/queues/" + d.queue
	bodies := map[string]string{}
	get := func(paths ...string) {
		for _, path := range paths {
			code, body := d.api(t, http.MethodGet, path)
			require.Equal(t, http.StatusOK, code, "GET %s: %s", path, body)
			bodies[path] = body
		}
	}

	// A systemic fault puts a task in retry for 15-30 s; read it there at
	// once. Its card does not exist, so whenever it comes back its outcome
	// is refused NOT_FOUND, which no count below depends on.
	retry := track(member("retry", 0))
	retry.CardID = wechatpaytest.CardIDPrefixNotFound + "WOibDc5-TBnbUk1"
	d.srv.FailNext(1, http.StatusUnauthorized, "SIGN_ERROR", "签名错误")
	retryID := d.enqueue(t, retry)
	d.waitState(t, retryID, asynq.TaskStateRetry)
	get(q+"/retry_tasks?page=1&size=100", q+"/tasks/"+retryID)

	// An import in flight (WeChat slow to answer; the client gives up
	// after 15 s), read under active tasks and on the servers page, which
	// shows each worker's tasks as of its last heartbeat (every 5 s).
	d.srv.SetLatency(time.Minute)
	activeID := d.enqueue(t, track(member("active", 0)))
	d.waitState(t, activeID, asynq.TaskStateActive)
	maskedActive := logging.MaskOpenID(member("active", 0).OpenID)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body := d.api(t, http.MethodGet, "/api/servers")
		if strings.Contains(body, maskedActive) {
			bodies["/api/servers"] = body
			break
		}
		require.True(t, time.Now().Before(deadline), "no server shows the import in flight: %s", body)
		time.Sleep(200 * time.Millisecond)
	}
	get(q+"/active_tasks?page=1&size=100", q+"/tasks/"+activeID)

	// Everything else the dashboard's API answers.
	get("/", "/api/queues", q, "/api/queue_stats", q+"/groups", "/api/scheduler_entries")
	for _, state := range []string{"pending", "scheduled", "archived", "completed"} {
		get(q + "/" + state + "_tasks?page=1&size=100")
	}
	for _, id := range append(append([]string{scheduledID}, completed...), archived...) {
		get(q + "/tasks/" + id)
	}
	code, _ := d.api(t, http.MethodGet, q+"/tasks/"+d.queue)
	require.Equal(t, http.StatusNotFound, code, "no such task")
	// Redis's own INFO holds no task data; miniredis does not answer it.
	if code, body := d.api(t, http.MethodGet, "/api/redis_info"); code == http.StatusOK {
		bodies["/api/redis_info"] = body
	} else {
		require.NotNil(t, d.r.Embedded, "redis_info: %d %s", code, body)
	}
	for path, body := range bodies {
		for _, o := range openids {
			require.NotContains(t, body, o, "GET %s shows a raw openid", path)
		}
	}

	// What the dashboard does show, so the check above is not vacuous.
	archivedList := bodies[q+"/archived_tasks?page=1&size=100"]
	require.Contains(t, archivedList, logging.MaskOpenID(named.OpenID), "payloads are shown, masked")
	require.Contains(t, archivedList, "PARAM_ERROR", "last errors are shown")
	require.Contains(t, archivedList, "NO_AUTH")
	require.Contains(t, archivedList, fmt.Sprintf("\\u003c%d bytes, not an import payload\\u003e", len(rawOpenID)))
	require.Contains(t, archivedList, logging.MaskOpenID(long.OpenID))
	require.Contains(t, bodies[q+"/retry_tasks?page=1&size=100"], "SIGN_ERROR")
	require.Contains(t, bodies[q+"/scheduled_tasks?page=1&size=100"], scheduledID)
	require.Contains(t, bodies[q+"/active_tasks?page=1&size=100"], activeID)
	require.Contains(t, bodies["/api/servers"], maskedActive, "the worker's task in flight")
	require.Contains(t, bodies[q+"/completed_tasks?page=1&size=100"], `already_member`)
	require.Contains(t, bodies[q+"/tasks/"+completed[0]], `imported`)

	// Without the login the same worker's dashboard says nothing.
	res, err := http.Get(d.dash + q + "/archived_tasks")
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	require.NotContains(t, string(body), d.queue)

	// The metrics of the same run.
	res, err = http.Get(d.mtrcs + "/metrics")
	require.NoError(t, err)
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, o := range openids {
		require.NotContains(t, string(raw), o, "metrics hold no openid")
	}
	got := metricstest.Scrape(t, d.mtrcs+"/metrics")
	for _, tt := range []struct {
		outcome, code string
		want          float64
	}{
		{metrics.OutcomeImported, "", 3},
		{metrics.OutcomeAlreadyMember, "", 1},
		{metrics.OutcomeRefused, "PARAM_ERROR", 1},
		{metrics.OutcomeRefused, "NO_AUTH", 1},
		{metrics.OutcomeRefused, "INVALID_REQUEST", 1},
		{metrics.OutcomeTransient, "SYSTEM_ERROR", 2},
		{metrics.OutcomeSystemic, "SIGN_ERROR", 1},
	} {
		v, ok := got.Value(metrics.ImportsTotal, "outcome", tt.outcome, "wechat_code", tt.code)
		require.True(t, ok, "%s %s exposed", tt.outcome, tt.code)
		require.Equal(t, tt.want, v, "imports %s %s", tt.outcome, tt.code)
	}
	n, ok := got.Value(metrics.CallDurationSeconds, "outcome", metrics.OutcomeImported)
	require.True(t, ok)
	require.Equal(t, 3.0, n, "imported calls timed")
	for state, want := range map[string]float64{"completed": 4, "scheduled": 1} {
		v, ok := got.Value("asynq_tasks_enqueued_total", "queue", d.queue, "state", state)
		require.True(t, ok, state)
		require.Equal(t, want, v, "asynq tasks %s", state)
	}
}

// TestDashboardOnly: `worker --dashboard-only` serves the dashboard and the
// metrics from nothing but REDIS_URL and the login — no WeChat Pay keys —
// and takes no task from the queue.
func TestDashboardOnly(t *testing.T) {
	t.Parallel()
	r := testkit.NewPrivateRedis(t) // its metrics read every queue on the server
	queue := r.Queue(t)
	env := map[string]string{"REDIS_URL": r.URL, "DASHBOARD_USER": "ops", "DASHBOARD_PASSWORD": "pw", "DASHBOARD_READ_ONLY": "true"}
	c := asynq.NewClient(r.Opt)
	defer c.Close()
	task, err := tasks.NewImportTask(member("only", 0), tasks.WithQueue(queue))
	require.NoError(t, err)
	info, err := c.Enqueue(task)
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs, exited := &testkit.Buffer{}, make(chan struct{})
	var runErr error
	go func() {
		defer close(exited)
		runErr = worker.Run(ctx, []string{"--queue", queue, "--dashboard-only", "--dashboard", "127.0.0.1:0", "--metrics", "127.0.0.1:0"},
			func(k string) string { return env[k] }, logs, logs)
	}()
	dash := "http://" + serverAddr(t, logs, "dashboard", exited)
	mtrcs := "http://" + serverAddr(t, logs, "metrics", exited)

	req, err := http.NewRequest(http.MethodGet, dash+"/api/queues/"+queue+"/pending_tasks", nil)
	require.NoError(t, err)
	req.SetBasicAuth("ops", "pw")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, "%s", body)
	require.Contains(t, string(body), info.ID)

	req, err = http.NewRequest(http.MethodDelete, dash+"/api/queues/"+queue+"/pending_tasks/"+info.ID, nil)
	require.NoError(t, err)
	req.SetBasicAuth("ops", "pw")
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, res.StatusCode, "DASHBOARD_READ_ONLY=true")

	got := metricstest.Scrape(t, mtrcs+"/metrics")
	v, ok := got.Value("asynq_tasks_enqueued_total", "queue", queue, "state", "pending")
	require.True(t, ok)
	require.Equal(t, 1.0, v, "the task waits: nobody works the queue")
	v, ok = got.Value(metrics.DeadLetters, "queue", queue)
	require.True(t, ok, "the dead-letter gauge needs no worker")
	require.Zero(t, v)
	v, ok = got.Value("cardimport_circuit_open", "queue", queue)
	require.True(t, ok, "the circuit's state is the fleet's, read from Redis")
	require.Zero(t, v)
	require.Contains(t, logs.String(), `"message":"dashboard only, not working the queue"`)

	cancel()
	select {
	case <-exited:
		require.NoError(t, runErr)
	case <-time.After(30 * time.Second):
		t.Fatal("dashboard did not stop")
	}
	require.Contains(t, logs.String(), `"message":"http server stopped"`)
}

// TestOpenDashboardWithoutLoginExitsOne: a dashboard other hosts could
// reach, without DASHBOARD_USER and DASHBOARD_PASSWORD, stops the worker at
// start, naming both.
func TestOpenDashboardWithoutLoginExitsOne(t *testing.T) {
	t.Parallel()
	b := setupProcess(t)
	bin, err := testkit.Command("worker")
	require.NoError(t, err)
	cmd := exec.Command(bin, "--dashboard", "0.0.0.0:0")
	cmd.Env = b.env
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, 1, exit.ExitCode())
	require.Contains(t, string(out), "worker: DASHBOARD_USER: required when --dashboard is not a loopback address")
	require.Contains(t, string(out), "worker: DASHBOARD_PASSWORD: required when --dashboard is not a loopback address")
}

// TestDashboardReplayKeepsDeadLettersConsistent: an import WeChat refuses
// (the merchant may not issue the card) is archived and recorded as a dead
// letter, counted by the metrics; once the cause is healed, "Run" on the
// dashboard's Archived tab replays it: the member is imported once under
// the same out_request_no and the record leaves the store.
func TestDashboardReplayKeepsDeadLettersConsistent(t *testing.T) {
	t.Parallel()
	d := startDashboardRun(t)
	store, err := deadletter.New(d.r.Opt, d.queue)
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	ctx := testkit.Context(t)

	p := member("replay", 0)
	p.CardID = wechatpaytest.CardIDPrefixNoAuth + "WOibDc5-TBnbUk1"
	id := d.enqueue(t, p)
	d.waitState(t, id, asynq.TaskStateArchived)
	rec := waitRecord(t, store, id)
	require.Equal(t, "NO_AUTH", rec.WeChatCode)
	require.Equal(t, logging.MaskOpenID(p.OpenID), rec.OpenIDMasked)
	deadLetters := func() float64 {
		v, ok := metricstest.Scrape(t, d.mtrcs+"/metrics").Value(metrics.DeadLetters, "queue", d.queue)
		require.True(t, ok, "%s exposed", metrics.DeadLetters)
		return v
	}
	require.Equal(t, 1.0, deadLetters())

	// The operator has the card authorised, then replays from the dashboard.
	d.srv.AuthorizeCard(p.CardID)
	code, body := d.api(t, http.MethodPost, "/api/queues/"+d.queue+"/archived_tasks/"+id+":run")
	require.Equal(t, http.StatusNoContent, code, "%s", body)

	info := d.waitState(t, id, asynq.TaskStateCompleted)
	res, err := tasks.DecodeResult(info.Result)
	require.NoError(t, err)
	require.Equal(t, tasks.OutcomeImported, res.Outcome)
	require.Equal(t, 1, d.srv.ImportCount(p.CardID, p.OpenID), "imported once")
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := store.Get(ctx, id)
		if errors.Is(err, deadletter.ErrNotFound) {
			break
		}
		require.True(t, time.Now().Before(deadline), "record still there after the import: %v", err)
		time.Sleep(20 * time.Millisecond)
	}
	n, err := store.Count(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, 0.0, deadLetters())
	_, archived := d.api(t, http.MethodGet, "/api/queues/"+d.queue+"/archived_tasks")
	require.NotContains(t, archived, id)
}

// waitRecord waits for the dead letter of out_request_no id.
func waitRecord(t *testing.T, store *deadletter.Store, id string) deadletter.Record {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rec, err := store.Get(context.Background(), id)
		if err == nil {
			return rec
		}
		require.ErrorIs(t, err, deadletter.ErrNotFound)
		require.True(t, time.Now().Before(deadline), "no dead letter for %s", id)
		time.Sleep(20 * time.Millisecond)
	}
}

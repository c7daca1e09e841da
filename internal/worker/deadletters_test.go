package worker_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/internal/enqueuecmd"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
	"github.com/cardimport/cardimport/internal/worker"
	"github.com/cardimport/cardimport/tasks"
)

// deadBundle is a worker running against the emulator on a queue of its
// own, the CLI pointed at the same queue, and the dead-letter store.
type deadBundle struct {
	srv    *wechatpaytest.Server
	r      *testkit.Redis
	queue  string
	env    map[string]string
	insp   *asynq.Inspector
	store  *deadletter.Store
	logs   *testkit.Buffer
	cancel context.CancelFunc
	done   chan error
}

func setupDead(t *testing.T) *deadBundle {
	t.Helper()
	b := &deadBundle{srv: wechatpaytest.NewServer(wechatpaytest.TestKeys(t)), r: testkit.NewRedis(t), logs: &testkit.Buffer{}}
	t.Cleanup(b.srv.Close)
	b.queue = b.r.Queue(t)
	b.env = testkit.WorkerEnv(t, b.srv, b.r, b.queue)
	// The emulator has no limit; the shared one (10/s by default) would
	// make 12,000 imports take 20 minutes.
	b.env["WECHATPAY_RATE_LIMIT"] = "10000"
	b.insp = asynq.NewInspector(b.r.Opt)
	t.Cleanup(func() { _ = b.insp.Close() })
	var err error
	b.store, err = deadletter.New(b.r.Opt, b.queue)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.store.Close() })
	return b
}

// start runs the worker until the test ends.
func (b *deadBundle) start(t *testing.T, concurrency int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel, b.done = cancel, make(chan error, 1)
	go func() {
		b.done <- worker.Run(ctx, []string{"--concurrency", fmt.Sprint(concurrency), "--retry-min-delay", "20ms", "--retry-max-delay", "100ms"},
			func(k string) string { return b.env[k] }, b.logs, b.logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-b.done:
			require.NoError(t, err, "worker stops cleanly")
		case <-time.After(30 * time.Second):
			t.Error("worker did not stop")
		}
	})
}

// cli runs `enqueue ARGS` against the bundle's queue.
func (b *deadBundle) cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = enqueuecmd.Run(context.Background(), args, func(k string) string { return b.env[k] }, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// waitFor polls cond until it holds, failing after timeout with what
// describe says.
func (b *deadBundle) waitFor(t *testing.T, timeout time.Duration, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case err := <-b.done:
			t.Fatalf("worker ended early: %v\n%s", err, b.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not reached in %s: %s", timeout, describe())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *deadBundle) count(t *testing.T) int64 {
	t.Helper()
	n, err := b.store.Count(context.Background())
	require.NoError(t, err)
	return n
}

func (b *deadBundle) queueInfo(t *testing.T) *asynq.QueueInfo {
	t.Helper()
	q, err := b.insp.GetQueueInfo(b.queue)
	require.NoError(t, err)
	return q
}

// listJSON runs `enqueue dead list --json` and decodes its lines.
func (b *deadBundle) listJSON(t *testing.T, args ...string) ([]map[string]any, string) {
	t.Helper()
	code, stdout, stderr := b.cli(t, append([]string{"dead", "list", "--json"}, args...)...)
	require.Equal(t, 0, code, stderr)
	var recs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "each line is a JSON object: %q", sc.Text())
		recs = append(recs, m)
	}
	return recs, stderr
}

// deadLetterMembers is the size of the done-when test: more than asynq's
// archive keeps (9,999 a queue). Every member costs the worker two RSA
// signatures and the emulator one, which the race detector makes several
// times slower; its run (and -short) uses fewer members, which is all it
// needs to look for data races, while the plain run of the same CI proves
// the scale.
func deadLetterMembers() int {
	if raceEnabled || testing.Short() {
		return 1_500
	}
	return 12_000
}

// TestLongDeadLettersBeyondAsynqsArchive is the "done when": 12,000
// members WeChat refuses for good (the merchant lacks the right to the
// card) are all dead letters, although asynq keeps 9,999; all are listed;
// once the merchant is given the card, one `dead replay --all` imports
// every one of them exactly once and empties the store.
func TestLongDeadLettersBeyondAsynqsArchive(t *testing.T) {
	testkit.Long(t)
	t.Parallel()
	b := setupDead(t)
	const card = "pNOAUTH-LatjvWOibDc5-TBnbUk1pD"
	n := deadLetterMembers()
	var csv bytes.Buffer
	csv.WriteString("card_id,openid,out_request_no\n")
	openids := make([]string, n)
	for i := range n {
		openids[i] = fmt.Sprintf("oUpF8uMuAJO_M2pxb%07d", i)
		fmt.Fprintf(&csv, "%s,%s,1900000001-20261128-%07d\n", card, openids[i], i)
	}
	path := filepath.Join(t.TempDir(), "members.csv")
	require.NoError(t, os.WriteFile(path, csv.Bytes(), 0o600))
	code, stdout, stderr := b.cli(t, "file", "--concurrency", "32", "--run", "beyond-archive", path)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, fmt.Sprintf("run=beyond-archive\nenqueued=%d duplicates=0 invalid=0\n", n), stdout)

	b.start(t, 50)
	b.waitFor(t, 3*time.Minute, func() bool {
		q := b.queueInfo(t)
		return q.Pending+q.Active+q.Retry+q.Scheduled == 0 && b.count(t) == int64(n)
	}, func() string { return fmt.Sprintf("queue %+v, dead letters %d", b.queueInfo(t), b.count(t)) })
	require.Equal(t, min(n, 9_999), b.queueInfo(t).Archived, "asynq trims its archive")

	start := time.Now()
	recs, stderr := b.listJSON(t)
	listTook := time.Since(start)
	require.Len(t, recs, n)
	require.Equal(t, fmt.Sprintf("listed=%d replayed=0\n", n), stderr)
	seen := map[string]bool{}
	for _, r := range recs {
		seen[r["out_request_no"].(string)] = true
		require.Equal(t, "permanent", r["reason"])
		require.Equal(t, "NO_AUTH", r["wechat_code"])
		require.EqualValues(t, 403, r["http_status"])
		require.Equal(t, card, r["card_id"])
		require.Regexp(t, `^oUpF\*\*\*\*\d{4}$`, r["openid_masked"])
		require.NotEmpty(t, r["request_id"])
	}
	require.Len(t, seen, n, "every member once")

	b.srv.AuthorizeCard(card)
	start = time.Now()
	code, stdout, stderr = b.cli(t, "dead", "replay", "--all")
	replayTook := time.Since(start)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, fmt.Sprintf("replayed=%d skipped=0 failed=0\n", n), stdout)
	b.waitFor(t, 3*time.Minute, func() bool {
		q := b.queueInfo(t)
		return q.Completed == n && b.count(t) == 0
	}, func() string { return fmt.Sprintf("queue %+v, dead letters %d", b.queueInfo(t), b.count(t)) })

	recs, stderr = b.listJSON(t)
	require.Empty(t, recs)
	require.Equal(t, "listed=0 replayed=0\n", stderr)
	require.Equal(t, n, b.srv.Stats().Imports)
	require.Equal(t, n, b.srv.Members())
	for _, o := range openids[:50] {
		require.Equal(t, 1, b.srv.ImportCount(card, o))
	}
	require.Zero(t, b.queueInfo(t).Archived, "replay deleted asynq's archived copies")
	t.Logf("dead list --json of %d: %s; dead replay --all: %s", n, listTook.Round(time.Millisecond), replayTook.Round(time.Millisecond))
	require.NotContains(t, b.logs.String(), "oUpF8uMuAJO_M2pxb", "no openid in the logs")
}

// TestDeadLettersFollowTheTask checks the paths other than the handler's:
// a task asynq archived on its own is recorded by the worker's sweep, and
// a record goes when its import succeeds after the dashboard's "run" or a
// fresh `enqueue one`.
func TestDeadLettersFollowTheTask(t *testing.T) {
	t.Parallel()
	b := setupDead(t)
	const card = "pNOAUTH-LatjvWOibDc5-TBnbUk1pE"
	member := func(i int) tasks.Payload {
		return tasks.Payload{CardID: card, OpenID: fmt.Sprintf("oUpF8uMuAJO_M2pxb%07d", i), OutRequestNo: fmt.Sprintf("1900000001-20261128-%07d", i)}
	}
	client := asynq.NewClient(b.r.Opt)
	t.Cleanup(func() { _ = client.Close() })
	enqueue := func(p tasks.Payload) {
		task, err := tasks.NewImportTask(p, tasks.WithQueue(b.queue))
		require.NoError(t, err)
		_, err = client.Enqueue(task)
		require.NoError(t, err)
	}

	// Archived before any worker ran, as asynq's recoverer archives a
	// task whose lease expired on its last retry: no handler saw it.
	lost := member(1)
	enqueue(lost)
	require.NoError(t, b.insp.ArchiveTask(b.queue, lost.OutRequestNo))

	b.start(t, 4)
	b.waitFor(t, 30*time.Second, func() bool { return b.count(t) == 1 }, func() string { return b.logs.String() })
	rec, err := b.store.Get(context.Background(), lost.OutRequestNo)
	require.NoError(t, err)
	require.Equal(t, deadletter.ReasonArchivedByAsynq, rec.Reason)

	// Two members refused by WeChat, recorded by the worker.
	viaRun, viaEnqueue := member(2), member(3)
	enqueue(viaRun)
	enqueue(viaEnqueue)
	b.waitFor(t, 30*time.Second, func() bool { return b.count(t) == 3 }, func() string { return b.logs.String() })
	require.Contains(t, b.logs.String(), `"message":"dead letter recorded"`)

	// A replay before the cause is fixed fails again: the record is dead
	// again, its attempts added up, not left as a replay in flight.
	code, stdout, stderr := b.cli(t, "dead", "replay", viaRun.OutRequestNo)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "replayed=1 skipped=0 failed=0\n", stdout)
	testkit.WaitState(t, b.insp, b.queue, viaRun.OutRequestNo, asynq.TaskStateArchived, 30*time.Second, b.logs)
	rec, err = b.store.Get(context.Background(), viaRun.OutRequestNo)
	require.NoError(t, err)
	require.Equal(t, deadletter.StateDead, rec.State)
	require.Equal(t, 2, rec.Attempts)
	require.Equal(t, 1, rec.Replays)
	require.Equal(t, "NO_AUTH", rec.WeChatCode)

	b.srv.AuthorizeCard(card)
	// The dashboard's "run" puts the archived task back as it is.
	require.NoError(t, b.insp.RunTask(b.queue, viaRun.OutRequestNo))
	// An operator deletes the archived task and enqueues the member anew.
	require.NoError(t, b.insp.DeleteTask(b.queue, viaEnqueue.OutRequestNo))
	code, stdout, stderr = b.cli(t, "one", "--card-id", card, "--openid", viaEnqueue.OpenID, "--out-request-no", viaEnqueue.OutRequestNo, "--run", "re-enqueue")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "run=re-enqueue\nenqueued out_request_no="+viaEnqueue.OutRequestNo+"\n", stdout)

	b.waitFor(t, 30*time.Second, func() bool { return b.count(t) == 1 }, func() string { return b.logs.String() })
	for _, p := range []tasks.Payload{viaRun, viaEnqueue} {
		_, err := b.store.Get(context.Background(), p.OutRequestNo)
		require.ErrorIs(t, err, deadletter.ErrNotFound, "%s imported, record gone", p.OutRequestNo)
		require.Equal(t, 1, b.srv.ImportCount(card, p.OpenID))
	}

	// The one asynq archived alone is replayed like any other.
	code, stdout, stderr = b.cli(t, "dead", "replay", lost.OutRequestNo)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "replayed=1 skipped=0 failed=0\n", stdout)
	b.waitFor(t, 30*time.Second, func() bool { return b.count(t) == 0 }, func() string { return b.logs.String() })
	code, stdout, stderr = b.cli(t, "status", "--json", lost.OutRequestNo)
	require.Equal(t, 0, code, stderr)
	var st map[string]any
	require.NoError(t, json.Unmarshal([]byte(stdout), &st))
	require.Equal(t, "completed", st["state"])
	require.Equal(t, "imported", st["outcome"])
	require.Regexp(t, `^\d{12}$`, st["code"])
	require.NotContains(t, st, "dead_letter")
}

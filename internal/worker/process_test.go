package worker_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
	"github.com/cardimport/cardimport/tasks"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

// procBundle is a queue, an emulator and the environment a worker process
// needs to import from one into the other.
type procBundle struct {
	srv   *wechatpaytest.Server
	r     *testkit.Redis
	queue string
	env   []string
	insp  *asynq.Inspector
}

func setupProcess(t *testing.T, opts ...wechatpaytest.Option) *procBundle {
	t.Helper()
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	b := &procBundle{r: testkit.NewRedis(t)}
	b.queue = b.r.Queue(t)
	b.srv = wechatpaytest.NewServer(wechatpaytest.TestKeys(t), opts...)
	t.Cleanup(b.srv.Close)
	vars := testkit.WorkerEnv(t, b.srv, b.r, b.queue)
	vars["RETRY_MIN_DELAY"] = "50ms"
	vars["RETRY_MAX_DELAY"] = "200ms"
	b.env = testkit.Environ(vars)
	b.insp = asynq.NewInspector(b.r.Opt)
	t.Cleanup(func() { _ = b.insp.Close() })
	return b
}

// start runs a worker process; its output goes to the returned buffer.
func (b *procBundle) start(t *testing.T) (*exec.Cmd, *testkit.Buffer) {
	t.Helper()
	p := testkit.Start(t, "worker", b.env, "--concurrency", "2")
	return p.Cmd, p.Out
}

func (b *procBundle) enqueue(t *testing.T, p tasks.Payload) {
	t.Helper()
	c := asynq.NewClient(b.r.Opt)
	defer c.Close()
	task, err := tasks.NewImportTask(p, tasks.WithQueue(b.queue))
	require.NoError(t, err)
	_, err = c.Enqueue(task)
	require.NoError(t, err)
}

func (b *procBundle) waitState(t *testing.T, id string, state asynq.TaskState, within time.Duration) *asynq.TaskInfo {
	t.Helper()
	return testkit.WaitState(t, b.insp, b.queue, id, state, within)
}

// TestKilledWorkerCostsNoRetry: a worker SIGKILLed mid-import leaves its
// task active under a lease; when the lease has expired the next worker
// takes it back without spending a retry, and the member is imported once.
func TestKilledWorkerCostsNoRetry(t *testing.T) {
	t.Parallel()
	b := setupProcess(t, wechatpaytest.WithLatency(2*time.Second))
	p := tasks.Payload{CardID: card, OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", OutRequestNo: "1900000001-20261128-kill01"}
	b.enqueue(t, p)

	first, _ := b.start(t)
	b.waitState(t, p.OutRequestNo, asynq.TaskStateActive, 20*time.Second)
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	_ = first.Wait()
	b.srv.SetLatency(0)

	// asynq trusts a lease as expired only 30 s after it ran out, and
	// leases last 30 s; rather than wait a minute, move the dead worker's
	// lease back in time. What follows is asynq's own recovery path.
	rc := b.r.Opt.MakeRedisClient().(redis.UniversalClient)
	defer rc.Close()
	leaseKey := "asynq:{" + b.queue + "}:lease"
	n, err := rc.ZAdd(context.Background(), leaseKey, redis.Z{Score: float64(time.Now().Add(-2 * time.Minute).Unix()), Member: p.OutRequestNo}).Result()
	require.NoError(t, err)
	require.Equal(t, int64(0), n, "the killed worker's lease was there")

	_, out := b.start(t)
	info := b.waitState(t, p.OutRequestNo, asynq.TaskStateCompleted, 30*time.Second)
	require.Equal(t, 0, info.Retried, "recovery does not spend a retry")
	require.Equal(t, 1, b.srv.ImportCount(card, p.OpenID))
	require.NotContains(t, out.String(), p.OpenID)
}

// TestSIGTERMFinishesInFlightAndExitsZero: SIGTERM lets the import in
// flight finish, then the worker exits 0.
func TestSIGTERMFinishesInFlightAndExitsZero(t *testing.T) {
	t.Parallel()
	b := setupProcess(t, wechatpaytest.WithLatency(time.Second))
	p := tasks.Payload{CardID: card, OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", OutRequestNo: "1900000001-20261128-term01"}
	b.enqueue(t, p)
	cmd, out := b.start(t)
	b.waitState(t, p.OutRequestNo, asynq.TaskStateActive, 20*time.Second)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	err := cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		t.Fatalf("worker exited %d:\n%s", exit.ExitCode(), out.String())
	}
	require.NoError(t, err)
	info := b.waitState(t, p.OutRequestNo, asynq.TaskStateCompleted, 5*time.Second)
	require.Equal(t, 0, info.Retried)
	require.Contains(t, out.String(), `"message":"worker stopped"`)
}

// TestConfigErrorExitsOne: a worker with a broken configuration says what
// is wrong, naming each variable, and exits 1 without touching the queue.
func TestConfigErrorExitsOne(t *testing.T) {
	t.Parallel()
	b := setupProcess(t)
	bin, err := testkit.Command("worker")
	require.NoError(t, err)
	cmd := exec.Command(bin)
	cmd.Env = append(b.env, "WECHATPAY_MCH_PRIVATE_KEY_FILE=/nonexistent/apiclient_key.pem", "RETRY_MIN_DELAY=soon")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, 1, exit.ExitCode())
	text := string(out)
	require.Contains(t, text, "WECHATPAY_MCH_PRIVATE_KEY_FILE: open /nonexistent/apiclient_key.pem: no such file or directory")
	require.Contains(t, text, `RETRY_MIN_DELAY: "soon" is not a duration`)
	require.False(t, strings.Contains(text, "PRIVATE KEY-----"))
}

// Package faultsuite_test is the fault suite: each scenario imports a few
// thousand members through real worker processes into the WeChat Pay
// emulator, which fails a share of first attempts, while something goes
// wrong on purpose — a worker SIGKILLed, Redis killed and restarted,
// WeChat down or slower than the worker's HTTP timeout, several workers and
// enqueuers racing. Each ends by checking what the merchant cares about:
// every member imported exactly once by WeChat's own count, nothing left
// pending or stuck, nothing archived or dead-lettered, no task charged a
// retry WeChat did not cause. Each reports the time from the fault to full
// recovery on a "faults:" line (go test -v, or bench/faults.sh).
//
// It runs only with FAULTS=1: FAULTS=1 go test -count=1 ./internal/faultsuite
package faultsuite_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
	"github.com/cardimport/cardimport/tasks"
)

// scenarios is how many scenarios the suite has. They spend most of their
// time waiting (for leases to run out, for an outage to end), so TestMain
// lets all of them run at once unless -parallel says otherwise; go test's
// default, one per CPU, would run them two by two here.
const scenarios = 8

func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", strconv.Itoa(scenarios))
	}
	os.Exit(testkit.Main(m))
}

const (
	// card is the card id of WeChat's own examples.
	card = "pbLatjvWOibDc5-TBnbUk1pD12o0"
	// members is how many members each scenario imports.
	members = 3000
	// transientShare of the members get a 500 SYSTEM_ERROR on their first
	// attempt.
	transientShare = 0.10
	// rateLimit is the workers' WECHATPAY_RATE_LIMIT: high enough that a
	// scenario takes seconds, low enough that its faults land mid-run.
	rateLimit = 200
	// recoveryLimit bounds the wait for a scenario to recover. asynq takes
	// back a killed worker's tasks only after their lease has run out and
	// then aged 30 s, on a check it makes every minute: up to two minutes.
	recoveryLimit = 4 * time.Minute
)

// openIDPattern matches the openid of every member of the suite, so one
// scan of a log finds any of them unmasked.
var openIDPattern = regexp.MustCompile(`oFaUlT8uMuAJO_M2px[0-9]{10}`)

// scenario is one run: its emulator, its queue on its Redis, its members
// and the worker processes importing them.
type scenario struct {
	t       *testing.T
	name    string
	srv     *wechatpaytest.Server
	redis   *testkit.Redis
	queue   string
	vars    map[string]string
	insp    *asynq.Inspector
	members []tasks.Payload

	mu      sync.Mutex
	workers []*testkit.Process
}

// newScenario prepares a scenario on r (the shared test Redis when nil).
func newScenario(t *testing.T, name string, r *testkit.Redis, opts ...wechatpaytest.Option) *scenario {
	t.Helper()
	needFaults(t)
	if r == nil {
		r = testkit.NewRedis(t)
	}
	s := &scenario{t: t, name: name, redis: r}
	s.srv = wechatpaytest.NewServer(wechatpaytest.TestKeys(t), append([]wechatpaytest.Option{wechatpaytest.WithFirstAttemptFaults(transientShare)}, opts...)...)
	t.Cleanup(s.srv.Close)
	s.queue = r.Queue(t)
	s.vars = testkit.WorkerEnv(t, s.srv, r, s.queue)
	s.vars["WECHATPAY_RATE_LIMIT"] = strconv.Itoa(rateLimit)
	s.insp = asynq.NewInspector(r.Opt)
	t.Cleanup(func() { _ = s.insp.Close() })
	for i := range members {
		s.members = append(s.members, tasks.Payload{
			CardID:       card,
			OpenID:       fmt.Sprintf("oFaUlT8uMuAJO_M2px%010d", i),
			OutRequestNo: fmt.Sprintf("1900000001-20261128-%s-%06d", name, i),
		})
	}
	t.Cleanup(func() {
		if dir := os.Getenv("FAULTS_LOG_DIR"); dir != "" {
			s.saveLogs(dir)
		}
		if t.Failed() {
			s.dumpLogs()
		}
	})
	return s
}

// enqueueAll enqueues every member through the producer API.
func (s *scenario) enqueueAll() {
	s.t.Helper()
	client := asynq.NewClient(s.redis.Opt)
	defer client.Close()
	p, err := tasks.NewProducer(client, tasks.WithTaskOptions(tasks.WithQueue(s.queue)))
	require.NoError(s.t, err)
	results, err := p.EnqueueMany(s.t.Context(), s.members)
	require.NoError(s.t, err)
	for _, res := range results {
		require.NoError(s.t, res.Err)
		require.False(s.t, res.Duplicate)
	}
}

// startWorker starts a worker process with the scenario's environment.
func (s *scenario) startWorker(args ...string) *testkit.Process {
	s.t.Helper()
	w := testkit.Start(s.t, "worker", testkit.Environ(s.vars), args...)
	s.mu.Lock()
	s.workers = append(s.workers, w)
	s.mu.Unlock()
	return w
}

// waitImported waits until WeChat holds at least n of the members.
func (s *scenario) waitImported(n int) {
	s.t.Helper()
	deadline := time.Now().Add(recoveryLimit)
	for s.srv.Members() < n {
		if time.Now().After(deadline) {
			s.t.Fatalf("only %d of %d members imported after %s", s.srv.Members(), n, recoveryLimit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitResumed waits until WeChat imports another member, and returns that
// moment: imports have resumed after a fault.
func (s *scenario) waitResumed() time.Time {
	s.t.Helper()
	n := s.srv.Members()
	if n == members {
		return time.Now()
	}
	s.waitImported(n + 1)
	return time.Now()
}

// waitDone waits until every member is imported and the queue holds only
// completed tasks, and returns that moment: full recovery.
func (s *scenario) waitDone() time.Time {
	s.t.Helper()
	deadline := time.Now().Add(recoveryLimit)
	var last string
	for {
		if s.srv.Members() == members {
			info, err := s.insp.GetQueueInfo(s.queue)
			if err == nil && info.Completed == members && info.Pending+info.Active+info.Scheduled+info.Retry+info.Archived+info.Aggregating == 0 {
				return time.Now()
			}
			if err != nil {
				last = err.Error()
			} else {
				last = fmt.Sprintf("completed %d, pending %d, active %d, scheduled %d, retry %d, archived %d",
					info.Completed, info.Pending, info.Active, info.Scheduled, info.Retry, info.Archived)
			}
		} else {
			last = fmt.Sprintf("%d of %d members imported", s.srv.Members(), members)
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("not recovered %s after the start of the wait: %s", recoveryLimit, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// check asserts the end state every scenario must reach.
func (s *scenario) check() {
	t := s.t
	t.Helper()
	stats := s.srv.Stats()
	require.Equal(t, members, stats.Members, "members WeChat holds")
	require.Equal(t, members, stats.Imports, "new imports: one for each member, none twice")
	for _, m := range s.members {
		if n := s.srv.ImportCount(m.CardID, m.OpenID); n != 1 {
			t.Fatalf("member %s imported %d times", m.OutRequestNo, n)
		}
	}

	info, err := s.insp.GetQueueInfo(s.queue)
	require.NoError(t, err)
	require.Equal(t, members, info.Completed)
	require.Zero(t, info.Pending+info.Active+info.Scheduled+info.Retry+info.Aggregating, "left in the queue")
	require.Zero(t, info.Archived, "archived")
	store, err := deadletter.New(s.redis.Opt, s.queue)
	require.NoError(t, err)
	defer store.Close()
	dead, err := store.Count(t.Context())
	require.NoError(t, err)
	require.Zero(t, dead, "dead letters")

	// Each task's retries are WeChat's doing: never more than the calls
	// under its number that failed on WeChat's side or timed out.
	retried := 0
	for page := 1; ; page++ {
		infos, err := s.insp.ListCompletedTasks(s.queue, asynq.PageSize(1000), asynq.Page(page))
		require.NoError(t, err)
		if len(infos) == 0 {
			break
		}
		for _, ti := range infos {
			if failures := s.srv.Failures(ti.ID); ti.Retried > failures {
				t.Errorf("task %s: %d retries spent, WeChat failed it %d times", ti.ID, ti.Retried, failures)
			}
			retried += ti.Retried
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for i, w := range s.workers {
		if loc := openIDPattern.FindStringIndex(w.Out.String()); loc != nil {
			t.Errorf("worker %d logged an unmasked openid", i)
		}
	}
	t.Logf("faults: %s: %d members imported once each (%d replays answered, %d retries spent, WeChat refusals %v)",
		s.name, stats.Members, stats.Replays, retried, stats.Refusals)
}

// report prints the scenario's recovery figure.
func (s *scenario) report(format string, args ...any) {
	s.t.Helper()
	s.t.Logf("faults: %s: "+format, append([]any{s.name}, args...)...)
}

// dumpLogs shows the end of each worker's log when the scenario failed.
func (s *scenario) dumpLogs() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, w := range s.workers {
		out := w.Out.String()
		if len(out) > 6000 {
			out = "…" + out[len(out)-6000:]
		}
		s.t.Logf("worker %d log:\n%s", i, strings.TrimSpace(openIDPattern.ReplaceAllString(out, "oFaU****")))
	}
}

// saveLogs writes each worker's whole log to dir, for a look after the run
// (FAULTS_LOG_DIR); the logs mask openids themselves.
func (s *scenario) saveLogs(dir string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, w := range s.workers {
		path := filepath.Join(dir, fmt.Sprintf("%s-worker-%d.log", s.name, i))
		if err := os.WriteFile(path, []byte(w.Out.String()), 0o600); err != nil {
			s.t.Errorf("save worker log: %v", err)
		}
	}
}

// seconds formats d for a report.
func seconds(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

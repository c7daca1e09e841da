package faultsuite_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/config"
	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/internal/redisconn"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
	"github.com/cardimport/cardimport/results"
)

// needFaults skips a test of the fault suite unless FAULTS=1, and runs it
// in parallel with the others.
func needFaults(t *testing.T) {
	t.Helper()
	if os.Getenv("FAULTS") == "" {
		// Minutes of two cores at full load: run on its own (CI's own
		// step, bench/faults.sh), not beside the other packages' tests,
		// whose measurements it would disturb.
		t.Skip("the fault suite runs with FAULTS=1 (bench/faults.sh; .ci/run runs it)")
	}
	if raceEnabled {
		// The suite's work happens in the worker processes, which are
		// built without the race detector anyway; the rest of the tests
		// cover the same code under -race.
		t.Skip("the fault suite runs without -race")
	}
	t.Parallel()
}

// failoverQueue is one queue of a deployment test: its emulator, its
// members (importable ones, and a few WeChat refuses for want of a trade,
// which end dead), their CSV file, a run, the workers importing them and
// the `enqueue file` feeding them in.
type failoverQueue struct {
	t     *testing.T
	name  string
	r     *testkit.Redis
	queue string
	run   string
	srv   *wechatpaytest.Server
	vars  map[string]string
	// importable and refused are the members' out_request_nos and
	// openids by kind; rows is every row, in file order.
	importable, refused []memberRow
	file                string
	progress            *progress

	mu      sync.Mutex
	workers []*testkit.Process
}

// memberRow is one row of a member file.
type memberRow struct{ no, openid string }

// newFailoverQueue prepares queue on r with n importable members and
// refused dead ones (every n/refused-th row).
func newFailoverQueue(t *testing.T, r *testkit.Redis, name, queue string, n, refused int) *failoverQueue {
	t.Helper()
	q := &failoverQueue{t: t, name: name, r: r, queue: queue, run: "failover-" + name}
	q.srv = wechatpaytest.NewServer(wechatpaytest.TestKeys(t), wechatpaytest.WithFirstAttemptFaults(transientShare))
	t.Cleanup(q.srv.Close)
	q.vars = testkit.WorkerEnv(t, q.srv, r, queue)
	q.vars["WECHATPAY_RATE_LIMIT"] = strconv.Itoa(rateLimit)
	q.vars["RETRY_MIN_DELAY"] = "100ms"
	q.vars["RETRY_MAX_DELAY"] = "1s"
	var csv strings.Builder
	csv.WriteString("card_id,openid,out_request_no\n")
	every := (n + refused) / max(refused, 1)
	for i := range n + refused {
		row := memberRow{no: fmt.Sprintf("1900000001-20261212-%s-%06d", name, i)}
		if refused > 0 && i%every == every/2 && len(q.refused) < refused {
			row.openid = wechatpaytest.OpenIDPrefixNoTrade + fmt.Sprintf("%010d", i)
			q.refused = append(q.refused, row)
		} else {
			row.openid = fmt.Sprintf("oFaUlT8uMuAJO_M2px%010d", i)
			q.importable = append(q.importable, row)
		}
		fmt.Fprintf(&csv, "%s,%s,%s\n", card, row.openid, row.no)
	}
	q.file = filepath.Join(t.TempDir(), name+".csv")
	require.NoError(t, os.WriteFile(q.file, []byte(csv.String()), 0o600))
	q.progress = watchProgress(t, q.srv)
	t.Cleanup(func() {
		if t.Failed() {
			q.dumpLogs()
		}
	})
	return q
}

// rows is how many rows the file has.
func (q *failoverQueue) rows() int { return len(q.importable) + len(q.refused) }

// startWorkers starts n worker processes on the queue.
func (q *failoverQueue) startWorkers(n int, args ...string) {
	q.t.Helper()
	for range n {
		w := testkit.Start(q.t, "worker", testkit.Environ(q.vars), args...)
		q.mu.Lock()
		q.workers = append(q.workers, w)
		q.mu.Unlock()
	}
}

// enqueue runs `enqueue ARGS…` with the queue's environment to its end and
// returns its standard output and exit code.
func (q *failoverQueue) enqueue(args ...string) (string, int) {
	q.t.Helper()
	bin, err := testkit.Command("enqueue")
	require.NoError(q.t, err)
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), recoveryLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = testkit.Environ(q.vars)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		q.t.Fatalf("enqueue %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 && code != 3 {
		q.t.Fatalf("enqueue %s: exit %d\n%s\n%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	}
	return stdout.String(), cmd.ProcessState.ExitCode()
}

// summary reads enqueue file's last line.
func summary(t *testing.T, out string) (enqueued, duplicates int) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var invalid int
	_, err := fmt.Sscanf(lines[len(lines)-1], "enqueued=%d duplicates=%d invalid=%d", &enqueued, &duplicates, &invalid)
	require.NoError(t, err, "enqueue file printed %q", out)
	require.Zero(t, invalid)
	return enqueued, duplicates
}

// feeder is an `enqueue file -` in progress, its rows written to its
// standard input at a set pace, so that it is still enqueueing when a
// fault hits.
type feeder struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	mu             sync.Mutex
	fed            int
	wrote          chan struct{}
}

// feed starts `enqueue file --run RUN -` and writes the file's rows to it
// at perSecond rows a second.
func (q *failoverQueue) feed(perSecond int) *feeder {
	q.t.Helper()
	bin, err := testkit.Command("enqueue")
	require.NoError(q.t, err)
	f := &feeder{wrote: make(chan struct{})}
	f.cmd = exec.Command(bin, "file", "--run", q.run, "-")
	f.cmd.Env = testkit.Environ(q.vars)
	f.cmd.Stdout, f.cmd.Stderr = &f.stdout, &f.stderr
	stdin, err := f.cmd.StdinPipe()
	require.NoError(q.t, err)
	require.NoError(q.t, f.cmd.Start())
	q.t.Cleanup(func() { _ = f.cmd.Process.Kill() })
	data, err := os.ReadFile(q.file)
	require.NoError(q.t, err)
	lines := strings.SplitAfter(string(data), "\n")
	go func() {
		defer close(f.wrote)
		defer stdin.Close()
		start := time.Now()
		for i, line := range lines {
			if i > 0 {
				// Paced from the start, so that a write blocked while
				// Redis is away is made up for afterwards.
				time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(perSecond))))
			}
			if _, err := io.WriteString(stdin, line); err != nil {
				return
			}
			f.mu.Lock()
			f.fed = i
			f.mu.Unlock()
		}
	}()
	return f
}

// rowsFed is how many member rows were written so far.
func (f *feeder) rowsFed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fed
}

// wait waits for the enqueue to end, which must succeed, and returns its
// counts.
func (f *feeder) wait(t *testing.T) (enqueued, duplicates int) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f.cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "enqueue file -: it must carry on through the failover\nstdout:\n%s\nstderr:\n%s", f.stdout.String(), f.stderr.String())
	case <-time.After(recoveryLimit):
		_ = f.cmd.Process.Kill()
		t.Fatalf("enqueue file - still running after %s\nstderr:\n%s", recoveryLimit, f.stderr.String())
	}
	return summary(t, f.stdout.String())
}

// waitIdle waits until the queue has nothing left to do: nothing
// pending, running, scheduled or waiting for a retry. With want, WeChat
// must also hold every importable member: after a failover that lost
// enqueues it cannot, until they are enqueued again.
func (q *failoverQueue) waitIdle(insp *asynq.Inspector, want bool) time.Time {
	q.t.Helper()
	return waitAllIdle(q.t, insp, []*failoverQueue{q}, want)[0]
}

// waitAllIdle waits as waitIdle for every queue of qs at once, and
// returns when each became idle.
func waitAllIdle(t *testing.T, insp *asynq.Inspector, qs []*failoverQueue, want bool) []time.Time {
	t.Helper()
	deadline := time.Now().Add(recoveryLimit)
	idle := make([]time.Time, len(qs))
	for left := len(qs); left > 0; {
		var last []string
		for i, q := range qs {
			if !idle[i].IsZero() {
				continue
			}
			n := q.srv.Members()
			if want && n != len(q.importable) {
				last = append(last, fmt.Sprintf("%s: %d of %d members imported", q.name, n, len(q.importable)))
				continue
			}
			info, err := insp.GetQueueInfo(q.queue)
			switch {
			case err != nil:
				last = append(last, q.name+": "+err.Error())
			case info.Pending+info.Active+info.Scheduled+info.Retry+info.Aggregating == 0:
				idle[i] = time.Now()
				left--
			default:
				last = append(last, fmt.Sprintf("%s: %d members imported; pending %d, active %d, scheduled %d, retry %d",
					q.name, n, info.Pending, info.Active, info.Scheduled, info.Retry))
			}
		}
		if left > 0 && time.Now().After(deadline) {
			t.Fatalf("not done %s after the start of the wait: %s", recoveryLimit, strings.Join(last, "; "))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return idle
}

// lost returns the out_request_nos whose task Redis does not hold: every
// row was acknowledged to the producer (enqueued, or a duplicate of a task
// Redis held then), so each one missing is an acknowledged enqueue the
// failover lost.
func (q *failoverQueue) lost(rdb redis.UniversalClient) []string {
	q.t.Helper()
	ctx := context.Background()
	pipe := rdb.Pipeline()
	all := append(append([]memberRow{}, q.importable...), q.refused...)
	cmds := make([]*redis.IntCmd, len(all))
	for i, m := range all {
		cmds[i] = pipe.Exists(ctx, "asynq:{"+q.queue+"}:t:"+m.no)
	}
	_, err := pipe.Exec(ctx)
	require.NoError(q.t, err)
	var lost []string
	for i, c := range cmds {
		if c.Val() == 0 {
			lost = append(lost, all[i].no)
		}
	}
	return lost
}

// rerun runs `enqueue file` on the same file into the same run, as an
// operator does after a failover: only what Redis lost is enqueued again.
func (q *failoverQueue) rerun() (enqueued, duplicates int) {
	q.t.Helper()
	out, _ := q.enqueue("file", "--run", q.run, q.file)
	return summary(q.t, out)
}

// check asserts the end state: every importable member imported once by
// WeChat's own count, every refused one dead in the dead-letter store,
// and the run's counts exactly those.
func (q *failoverQueue) check(rdb redis.UniversalClient) results.Run {
	t := q.t
	t.Helper()
	stats := q.srv.Stats()
	twice := 0
	for _, m := range q.importable {
		switch n := q.srv.ImportCount(card, m.openid); {
		case n > 1:
			twice++
		case n == 0:
			t.Errorf("%s: member %s not imported", q.name, m.no)
		}
	}
	require.Zero(t, twice, "%s: members imported twice", q.name)
	require.Equal(t, len(q.importable), stats.Imports, "%s: new imports, one a member", q.name)

	store, err := deadletter.NewFromRedisClient(rdb, q.queue)
	require.NoError(t, err)
	dead, err := store.Count(t.Context())
	require.NoError(t, err)
	require.Equal(t, int64(len(q.refused)), dead, "%s: dead letters", q.name)

	res, err := results.New(rdb, q.queue)
	require.NoError(t, err)
	run, err := res.Run(t.Context(), q.run)
	require.NoError(t, err)
	require.Equal(t, int64(len(q.importable)), run.Imported, "%s: the run's imported", q.name)
	require.Equal(t, int64(len(q.refused)), run.Dead, "%s: the run's dead", q.name)
	require.Zero(t, run.AlreadyMember, "%s: the run's already members", q.name)

	q.mu.Lock()
	defer q.mu.Unlock()
	for i, w := range q.workers {
		out := w.Out.String()
		require.False(t, openIDPattern.MatchString(out), "%s: worker %d logged an unmasked openid", q.name, i)
		require.NotContains(t, out, "CROSSSLOT", "%s: worker %d: a script or transaction across slots", q.name, i)
	}
	return run
}

// dumpLogs shows the end of each worker's log.
func (q *failoverQueue) dumpLogs() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, w := range q.workers {
		out := w.Out.String()
		if len(out) > 6000 {
			out = "…" + out[len(out)-6000:]
		}
		q.t.Logf("%s worker %d log:\n%s", q.name, i, strings.TrimSpace(openIDPattern.ReplaceAllString(out, "oFaU****")))
	}
}

// progress samples how many members an emulator holds, every 5 ms, so
// that a test can tell when imports stopped and resumed.
type progress struct {
	mu      sync.Mutex
	samples []sample
}

type sample struct {
	at time.Time
	n  int
}

// watchProgress samples srv until the test ends.
func watchProgress(t *testing.T, srv *wechatpaytest.Server) *progress {
	p := &progress{}
	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		last := -1
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				if n := srv.Members(); n != last {
					last = n
					p.mu.Lock()
					p.samples = append(p.samples, sample{at: now, n: n})
					p.mu.Unlock()
				}
			}
		}
	}()
	return p
}

// at is how many members were held at time at.
func (p *progress) at(at time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.samples {
		if s.at.After(at) {
			break
		}
		n = s.n
	}
	return n
}

// resumed is the first time after from when more than beyond members
// more than at from were held; false if not yet.
func (p *progress) resumed(from time.Time, beyond int) (time.Time, bool) {
	base := p.at(from)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.samples {
		if s.at.After(from) && s.n > base+beyond {
			return s.at, true
		}
	}
	return time.Time{}, false
}

// longestStall is the longest time between two imports from from to to
// while imports were still to come (the end of the run is no stall).
func (p *progress) longestStall(from, to time.Time, total int) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var longest time.Duration
	prev := from
	for _, s := range p.samples {
		switch {
		case !s.at.After(from):
			continue
		case s.at.After(to):
			return max(longest, to.Sub(prev))
		}
		longest = max(longest, s.at.Sub(prev))
		if s.n >= total {
			return longest
		}
		prev = s.at
	}
	return max(longest, to.Sub(prev))
}

// waitResumed waits until imports resumed after from: more than inFlight
// members beyond those held at from, so that at least one import was
// taken from Redis after it.
func (q *failoverQueue) waitResumed(from time.Time, inFlight int) time.Time {
	q.t.Helper()
	deadline := time.Now().Add(recoveryLimit)
	for {
		if at, ok := q.progress.resumed(from, min(inFlight, len(q.importable)-q.progress.at(from)-1)); ok {
			return at
		}
		if time.Now().After(deadline) {
			q.t.Fatalf("%s: imports did not resume within %s", q.name, recoveryLimit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// inFlight is the most imports a queue's workers may have begun before a
// fault: their concurrency each.
func inFlight(workers int) int { return workers * config.DefaultConcurrency }

// connect returns a client of the deployment as the worker makes one.
func connect(t *testing.T, opt asynq.RedisConnOpt) redis.UniversalClient {
	t.Helper()
	rdb, err := redisconn.Client(opt)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

package faultsuite_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/wechatpay"
)

// TestWorkerKilledThreeTimes: the worker is SIGKILLed three times in a
// row mid-run and restarted each time, as a supervisor would. The tasks
// it held come back when their leases expire, without a retry spent.
func TestWorkerKilledThreeTimes(t *testing.T) {
	s := newScenario(t, "killed", nil)
	s.enqueueAll()
	w := s.startWorker()
	var firstKill, lastKill time.Time
	for k := 1; k <= 3; k++ {
		s.waitImported(members * k / 5)
		require.NoError(t, w.Process.Signal(syscall.SIGKILL))
		_ = w.Wait()
		lastKill = time.Now()
		if k == 1 {
			firstKill = lastKill
		}
		w = s.startWorker()
	}
	resumed := s.waitResumed()
	done := s.waitDone()
	s.check()
	s.report("3 SIGKILLs; imports resumed %s after the last kill, full recovery (the killed workers' tasks too) %s after it, %s after the first",
		seconds(resumed.Sub(lastKill)), seconds(done.Sub(lastKill)), seconds(done.Sub(firstKill)))
}

// TestRedisRestartedMidRun: the Redis holding the queue (AOF, fsync at
// every write) is SIGKILLed mid-run and started again three seconds later
// on the same files; workers and producer reconnect on their own.
func TestRedisRestartedMidRun(t *testing.T) {
	r := startRedisServer(t)
	s := newScenario(t, "redis", r.Redis)
	s.enqueueAll()
	s.startWorker()
	s.startWorker()
	s.waitImported(members / 3)
	r.kill(t)
	killed := time.Now()
	time.Sleep(3 * time.Second)
	r.start(t)
	back := time.Now()
	resumed := s.waitResumed()
	done := s.waitDone()
	s.check()
	s.report("Redis down %s; imports resumed %s after it came back, full recovery %s after it (%s after the kill)",
		seconds(back.Sub(killed)), seconds(resumed.Sub(back)), seconds(done.Sub(back)), seconds(done.Sub(killed)))
}

// TestWeChatDownForAMinute: WeChat answers 503 to every call for a minute.
// The circuit opens, so the workers neither hammer WeChat nor spend the
// members' retries; when WeChat is back a probe closes it.
func TestWeChatDownForAMinute(t *testing.T) {
	s := newScenario(t, "outage", nil)
	s.enqueueAll()
	s.startWorker()
	s.waitImported(members / 4)
	s.srv.SetOutage(http.StatusServiceUnavailable)
	down := time.Now()
	time.Sleep(time.Minute)
	s.srv.SetOutage(0)
	up := time.Now()
	refused := s.srv.Stats().Refusals["SERVICE_UNAVAILABLE"]
	resumed := s.waitResumed()
	done := s.waitDone()
	s.check()
	// Without the circuit, 20 workers would send hundreds of calls a
	// minute; with it, the run of failures that opens it and a probe
	// every 5 s.
	require.Less(t, refused, 100, "calls WeChat refused with 503 during the outage")
	s.report("503 for %s, %d calls refused; imports resumed %s after WeChat came back, full recovery %s after it",
		seconds(up.Sub(down)), refused, seconds(resumed.Sub(up)), seconds(done.Sub(up)))
}

// TestAnswersSlowerThanTheHTTPTimeout: for 20 s WeChat answers only after
// the worker's HTTP timeout. It carries out the calls all the same, so the
// retries under the same out_request_no meet their replays.
func TestAnswersSlowerThanTheHTTPTimeout(t *testing.T) {
	s := newScenario(t, "slow", nil)
	s.enqueueAll()
	s.startWorker()
	s.waitImported(members / 4)
	s.srv.SetLatency(wechatpay.DefaultHTTPTimeout + 2*time.Second)
	slow := time.Now()
	time.Sleep(20 * time.Second)
	s.srv.SetLatency(0)
	fast := time.Now()
	done := s.waitDone()
	s.check()
	require.Positive(t, s.srv.Stats().Replays, "calls timed out on the worker's side were carried out, and replayed on retry")
	// WeChat carries out a call whose caller timed out, so imports go on
	// during the slow spell; what recovers is the calls' speed.
	s.report("answers after %s for %s; full recovery %s after answers were fast again",
		seconds(wechatpay.DefaultHTTPTimeout+2*time.Second), seconds(fast.Sub(slow)), seconds(done.Sub(fast)))
}

// TestWorkersAndEnqueuersAtOnce: three workers import while two
// `enqueue file` processes enqueue the same file at the same time: each
// member is enqueued once, by one of them, and imported once.
func TestWorkersAndEnqueuersAtOnce(t *testing.T) {
	s := newScenario(t, "crowd", nil)
	var csv strings.Builder
	csv.WriteString("card_id,openid,code,out_request_no\n")
	for _, m := range s.members {
		csv.WriteString(m.CardID + "," + m.OpenID + ",," + m.OutRequestNo + "\n")
	}
	file := filepath.Join(t.TempDir(), "members.csv")
	require.NoError(t, os.WriteFile(file, []byte(csv.String()), 0o600))
	bin, err := testkit.Command("enqueue")
	require.NoError(t, err)
	for range 3 {
		s.startWorker()
	}

	start := time.Now()
	outs := make([]string, 2)
	var wg sync.WaitGroup
	for i := range outs {
		wg.Go(func() {
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(bin, "file", file)
			cmd.Env = testkit.Environ(map[string]string{"REDIS_URL": s.redis.URL, "QUEUE": s.queue})
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Errorf("enqueue file %d: %v\n%s", i, err, stderr.String())
			}
			outs[i] = strings.TrimSpace(stdout.String())
		})
	}
	wg.Wait()
	enqueued := 0
	for _, out := range outs {
		var n, dup, invalid int
		// The summary is the last line, after the run=ID line.
		lines := strings.Split(out, "\n")
		require.Regexp(t, `^run=\S+$`, lines[0], "enqueue file printed %q", out)
		_, err := fmt.Sscanf(lines[len(lines)-1], "enqueued=%d duplicates=%d invalid=%d", &n, &dup, &invalid)
		require.NoError(t, err, "enqueue file printed %q", out)
		require.Zero(t, invalid)
		require.Equal(t, members, n+dup, "each row enqueued or a duplicate: %q", out)
		enqueued += n
	}
	require.Equal(t, members, enqueued, "every member enqueued by exactly one of the two: %q", outs)
	done := s.waitDone()
	s.check()
	s.report("3 workers, 2 concurrent enqueue file runs (%s); all imported %s after the start", strings.Join(outs, " | "), seconds(done.Sub(start)))
}

package worker_test

import (
	"fmt"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
	"github.com/cardimport/cardimport/tasks"
)

// BenchmarkSharedRateLimit runs two worker processes with
// WECHATPAY_RATE_LIMIT=R against an emulator that refuses more than R calls
// in any second and answers after 50 ms, on a queue holding about twelve
// seconds of work, and reports the rate the fleet achieved as a share of R
// (goal: at least 0.95) and the share of its calls refused with 429 (goal:
// under 0.001).
//
//	go test -run '^$' -bench SharedRateLimit -benchtime 1x ./internal/worker
func BenchmarkSharedRateLimit(b *testing.B) {
	for _, rate := range []int{40, 100} {
		b.Run(fmt.Sprintf("R=%d", rate), func(b *testing.B) {
			for range b.N {
				run := runRateLimited(b, rate, 12*rate)
				b.ReportMetric(run.achieved, "of_R")
				b.ReportMetric(run.refused, "refused_429")
			}
		})
	}
}

// rateRun is what runRateLimited measured.
type rateRun struct {
	// achieved is the rate of calls WeChat admitted, as a share of the
	// limit; refused is the share of calls it refused with 429.
	achieved, refused float64
	srv               *wechatpaytest.Server
	logs              [2]*testkit.Buffer // of each worker
	payloads          []tasks.Payload
}

// runRateLimited enqueues n members, runs two worker processes with
// WECHATPAY_RATE_LIMIT=rate against an emulator refusing more than rate
// calls in any second, and waits until the queue is drained.
func runRateLimited(b testing.TB, rate, n int) rateRun {
	b.Helper()
	bin, err := testkit.Command("worker")
	if err != nil {
		b.Fatal(err)
	}
	r := testkit.NewRedis(b)
	queue := r.Queue(b)
	srv := wechatpaytest.NewServer(wechatpaytest.TestKeys(b), wechatpaytest.WithRateLimit(rate), wechatpaytest.WithLatency(50*time.Millisecond))
	b.Cleanup(srv.Close)
	vars := testkit.WorkerEnv(b, srv, r, queue)
	vars["WECHATPAY_RATE_LIMIT"] = strconv.Itoa(rate)
	env := testkit.Environ(vars)

	c := asynq.NewClient(r.Opt)
	run := rateRun{srv: srv, logs: [2]*testkit.Buffer{{}, {}}}
	for i := range n {
		p := tasks.Payload{CardID: card, OpenID: fmt.Sprintf("oUpF8uMuAJO_M2pxb%06d", i), OutRequestNo: fmt.Sprintf("1900000001-20261128-bench%06d", i)}
		task, err := tasks.NewImportTask(p, tasks.WithQueue(queue))
		if err == nil {
			_, err = c.Enqueue(task)
		}
		if err != nil {
			b.Fatal(err)
		}
		run.payloads = append(run.payloads, p)
	}
	_ = c.Close()

	if bb, ok := b.(*testing.B); ok {
		bb.ResetTimer()
		defer bb.StopTimer()
	}
	for _, logs := range run.logs {
		cmd := exec.Command(bin, "--concurrency", "20")
		cmd.Env, cmd.Stdout, cmd.Stderr = env, logs, logs
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	}
	insp := asynq.NewInspector(r.Opt)
	defer insp.Close()
	deadline := time.Now().Add(time.Duration(3*n/rate)*time.Second + 30*time.Second)
	for {
		q, err := insp.GetQueueInfo(queue)
		if err != nil {
			b.Fatal(err)
		}
		if q.Completed+q.Archived == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("queue not drained: %+v\n%s\n%s", q, run.logs[0], run.logs[1])
		}
		time.Sleep(50 * time.Millisecond)
	}
	s := srv.Stats()
	if s.Imports != n {
		b.Fatalf("imported %d of %d", s.Imports, n)
	}
	admitted, first, last := srv.Admitted()
	span := last.Sub(first).Seconds()
	run.achieved = float64(admitted-1) / span / float64(rate)
	run.refused = float64(s.Refusals["RATELIMIT_EXCEEDED"]) / float64(s.Requests)
	b.Logf("R=%d: %d calls admitted in %.2fs (%.3f of R), %d refused with 429 of %d", rate, admitted, span, run.achieved, s.Refusals["RATELIMIT_EXCEEDED"], s.Requests)
	return run
}

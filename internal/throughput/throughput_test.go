package throughput_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cardimport/cardimport/internal/config"
	"github.com/cardimport/cardimport/internal/redisconn"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
	"github.com/cardimport/cardimport/internal/worker"
	"github.com/cardimport/cardimport/tasks"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

const (
	// card is the card id of WeChat's own examples.
	card = "pbLatjvWOibDc5-TBnbUk1pD12o0"
	// bulkImports is the size of each throughput run.
	bulkImports = 3000
	// warmImports go through the worker (or the floor's server) before
	// each run is timed, as through any worker that has been running: its
	// connections to Redis and WeChat open, Redis's script cache filled,
	// its goroutines' stacks and heap grown.
	warmImports = 300
	// latencyRate and latencyImports make the light load the latency is
	// measured under: 20 members a second for 10 seconds.
	latencyRate    = 20
	latencyImports = 200
	// rounds is how many times floor and e2e each run twice, in the order
	// floor, e2e, e2e, floor: the other work of a shared host comes and
	// goes within seconds, and more, shorter alternations weigh on both
	// alike.
	rounds = 2
	// memConcurrency is the worker's --concurrency of the memory run.
	memConcurrency = 100
	// rateLimit is WECHATPAY_RATE_LIMIT for every run: far above what two
	// cores carry, so that the benchmark measures capacity, not WeChat's
	// limit (10 a second by default).
	rateLimit = "100000"
	// waitFor bounds every run; the slowest takes about 15 s.
	waitFor = 3 * time.Minute
)

// BenchmarkThroughput measures, in one run on one machine:
//
//   - floor: imports a second of an asynq server in this process, at the
//     worker's default concurrency, whose handler does only the
//     cryptography one import costs (the merchant signs the request and
//     WeChat verifies it; WeChat signs the answer and the merchant
//     verifies it: two RSA-2048 signatures, two verifications);
//   - e2e: imports a second of the product: the same 3,000 enqueues, a
//     real worker process at its default concurrency, a real
//     wechatpay-sandbox process, until every task is completed; and e2e
//     as a share of the floor (ratio). Each is the mean of four runs of
//     3,000, taken in the order floor, e2e, e2e, floor, twice (rounds);
//     each run's server or worker first works through 300 imports
//     untimed (warmImports), and each run's rate is logged;
//   - floor_cpu_ms/import, e2e_cpu_ms/import: CPU time (user and system)
//     per import of this process for the floor, of the worker, the
//     sandbox and this process for e2e; Redis's is left out (the server
//     may be shared). cpu_ratio, floor's over e2e's, is the ratio of
//     what the two can carry on a machine with nothing else to do, and
//     moves much less than imports/s with the other work of a shared host;
//     worker_cpu_ms/import and sandbox_cpu_ms/import split e2e's;
//   - p50_ms, p99_ms: time from enqueue to completed at 20 imports a
//     second, each task's state polled every millisecond;
//   - peak_rss_MB: the worker's peak resident memory (VmHWM) at
//     --concurrency 100 over 3,300 imports, and c100_imports/s its rate.
//
// Run it with -benchtime 1x (bench/throughput.sh); it needs REDIS_URL.
func BenchmarkThroughput(b *testing.B) {
	if os.Getenv("REDIS_URL") == "" {
		b.Skip("needs REDIS_URL: throughput is measured against a real Redis")
	}
	r := testkit.NewRedis(b)
	keys := wechatpaytest.TestKeys(b)
	sb := testkit.StartSandbox(b)
	var floor, e2e, floorCPU, e2eCPU, workerCPU, sandboxCPU, c100, p50, p99, rss float64
	for i := range b.N {
		tag := "tp" + strconv.Itoa(i)
		// Floor and end to end twice each per round, in the order A B B
		// A, so that the other work of a shared host weighs on both alike.
		const runs = 2 * rounds
		for j, phase := range strings.Repeat("feef", rounds) {
			tag := tag + string(phase) + strconv.Itoa(j)
			if phase == 'f' {
				rate, cpu := cryptoFloor(b, r, keys, tag)
				floor, floorCPU = floor+rate/runs, floorCPU+cpu/runs
				b.Logf("floor %6.1f imports/s, %.2f ms CPU an import", rate, cpu)
				continue
			}
			run := endToEnd(b, r, sb, tag)
			e2e, e2eCPU = e2e+run.rate/runs, e2eCPU+run.cpu()/runs
			workerCPU, sandboxCPU = workerCPU+run.cpuMs[0]/runs, sandboxCPU+run.cpuMs[1]/runs
			b.Logf("e2e   %6.1f imports/s, %.2f ms CPU an import", run.rate, run.cpu())
		}
		q50, q99 := latency(b, r, sb, tag+"l")
		p50 += ms(q50)
		p99 += ms(q99)
		mem := endToEnd(b, r, sb, tag+"m", "--concurrency", strconv.Itoa(memConcurrency))
		c100 += mem.rate
		rss += float64(mem.peakKB) / 1024
	}
	n := float64(b.N)
	b.ReportMetric(floor/n, "floor_imports/s")
	b.ReportMetric(e2e/n, "e2e_imports/s")
	b.ReportMetric(e2e/floor, "ratio")
	b.ReportMetric(floorCPU/n, "floor_cpu_ms/import")
	b.ReportMetric(e2eCPU/n, "e2e_cpu_ms/import")
	b.ReportMetric(floorCPU/e2eCPU, "cpu_ratio")
	b.ReportMetric(workerCPU/n, "worker_cpu_ms/import")
	b.ReportMetric(sandboxCPU/n, "sandbox_cpu_ms/import")
	b.ReportMetric(p50/n, "p50_ms")
	b.ReportMetric(p99/n, "p99_ms")
	b.ReportMetric(rss/n, "peak_rss_MB")
	b.ReportMetric(c100/n, "c100_imports/s")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// members returns n valid members no other run of this benchmark uses.
func members(tag string, n int) []tasks.Payload {
	ms := make([]tasks.Payload, n)
	for i := range ms {
		ms[i] = tasks.Payload{
			CardID:       card,
			OpenID:       fmt.Sprintf("oUpF8uMuAJO%s%07d", tag, i),
			OutRequestNo: fmt.Sprintf("1900000001-%s-%07d", tag, i),
		}
	}
	return ms
}

// producer enqueues into queue as a Go producer does.
func producer(b *testing.B, r *testkit.Redis, queue string) *tasks.Producer {
	b.Helper()
	c := asynq.NewClient(r.Opt)
	b.Cleanup(func() { _ = c.Close() })
	p, err := tasks.NewProducer(c, tasks.WithTaskOptions(tasks.WithQueue(queue)))
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// bulk enqueues members into queue and waits until every one is
// completed; it returns the time from the first enqueue to the last
// completion. Whatever works the queue must be running already, and
// nothing else may be enqueued into it meanwhile.
func bulk(b *testing.B, r *testkit.Redis, queue string, ms []tasks.Payload, worker *testkit.Process) time.Duration {
	b.Helper()
	p := producer(b, r, queue)
	rdb, err := redisconn.Client(r.Opt)
	if err != nil {
		b.Fatal(err)
	}
	defer rdb.Close()
	ctx := testkit.Context(b)
	// asynq keeps a completed task (it has a retention) in the queue's
	// completed set: counting that set is one cheap call per poll.
	completed := "asynq:{" + queue + "}:completed"
	done, err := rdb.ZCard(ctx, completed).Result()
	if err != nil {
		b.Fatal(err)
	}
	want := done + int64(len(ms))
	start := time.Now()
	results, err := p.EnqueueMany(ctx, ms)
	if err != nil {
		b.Fatal(err)
	}
	for _, res := range results {
		if res.Duplicate || res.Err != nil {
			b.Fatalf("member %d: duplicate=%v err=%v", res.Index, res.Duplicate, res.Err)
		}
	}
	deadline := start.Add(waitFor)
	for {
		n, err := rdb.ZCard(ctx, completed).Result()
		if err != nil {
			b.Fatal(err)
		}
		if n >= want {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			failStuck(b, r, queue, n-done, len(ms), worker)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// failStuck ends the benchmark with where the queue stands.
func failStuck(b *testing.B, r *testkit.Redis, queue string, done int64, want int, worker *testkit.Process) {
	b.Helper()
	insp := asynq.NewInspector(r.Opt)
	defer insp.Close()
	info, err := insp.GetQueueInfo(queue)
	msg := fmt.Sprintf("%d of %d imports completed within %s; queue: %+v %v", done, want, waitFor, info, err)
	if worker != nil {
		msg += "\nworker log (tail):\n" + tail(worker.Out.String())
	}
	b.Fatal(msg)
}

// cryptoFloor runs an asynq server in this process, at the worker's
// default concurrency and with its TaskCheckInterval, whose handler only signs and verifies what one
// import costs, and returns its imports a second over bulkImports tasks
// enqueued as for endToEnd, and the CPU time per import in ms.
func cryptoFloor(b *testing.B, r *testkit.Redis, keys *wechatpaytest.Keys, tag string) (float64, float64) {
	b.Helper()
	queue := r.Queue(b)
	srv := asynq.NewServer(r.Opt, asynq.Config{
		Concurrency:       config.DefaultConcurrency,
		Queues:            map[string]int{queue: 1},
		TaskCheckInterval: worker.TaskCheckInterval,
		LogLevel:          asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.Handle(tasks.TypeImport, cryptoOnly(b, keys))
	if err := srv.Start(mux); err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	bulk(b, r, queue, members(tag+"w", warmImports), nil)
	cpu := testkit.CPUTime(b, os.Getpid())
	d := bulk(b, r, queue, members(tag, bulkImports), nil)
	cpu = testkit.CPUTime(b, os.Getpid()) - cpu
	return bulkImports / d.Seconds(), ms(cpu) / bulkImports
}

// cryptoOnly is a handler doing the RSA work of one import, over messages
// shaped like the real ones: the merchant signs the request (method, URI,
// timestamp, nonce, body) and WeChat verifies it with the merchant's
// certificate; WeChat signs its answer with the WeChat Pay public key's
// private half and the merchant verifies it. All RSA-2048, PKCS#1 v1.5,
// SHA-256, as WECHATPAY2-SHA256-RSA2048.
func cryptoOnly(b *testing.B, keys *wechatpaytest.Keys) asynq.Handler {
	mchPub, ok := keys.MchCert.PublicKey.(*rsa.PublicKey)
	if !ok {
		b.Fatal("merchant certificate has no RSA key")
	}
	wxPub := keys.WechatPayPublicKey()
	uri := "/v3/marketing/membercard-open/cards/" + card + "/users/import"
	return asynq.HandlerFunc(func(_ context.Context, t *asynq.Task) error {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		nonce := rand.Text()
		request := "POST\n" + uri + "\n" + ts + "\n" + nonce + "\n" + string(t.Payload()) + "\n"
		if err := signVerify(keys.MchPrivateKey, mchPub, request); err != nil {
			return err
		}
		answer := ts + "\n" + nonce + "\n" + `{"code":"` + nonce[:16] + `"}` + "\n"
		return signVerify(keys.PublicKeyPrivate, wxPub, answer)
	})
}

func signVerify(priv *rsa.PrivateKey, pub *rsa.PublicKey, message string) error {
	sum := sha256.Sum256([]byte(message))
	sig, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, sum[:])
	if err != nil {
		return err
	}
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig)
}

// stats reads the sandbox's counts.
func stats(b *testing.B, s *testkit.Sandbox) wechatpaytest.Stats {
	b.Helper()
	res, err := http.Get(s.URL + "/stats")
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	var st wechatpaytest.Stats
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		b.Fatal(err)
	}
	return st
}

// startWorker runs a worker process on queue against the sandbox, with
// the sandbox's env file as its environment, and waits until it works.
func startWorker(b *testing.B, r *testkit.Redis, sb *testkit.Sandbox, queue string, args ...string) *testkit.Process {
	b.Helper()
	vars := maps.Clone(sb.Env)
	vars["REDIS_URL"] = r.URL
	vars["QUEUE"] = queue
	vars["WECHATPAY_RATE_LIMIT"] = rateLimit
	p := testkit.Start(b, "worker", testkit.Environ(vars), args...)
	p.WaitOutput(b, `"message":"worker started"`)
	return p
}

// e2eRun is what endToEnd measured.
type e2eRun struct {
	// rate is in imports a second.
	rate float64
	// cpuMs is the CPU time an import, in ms, of the worker, the sandbox
	// and this process (the producer, the poller, the worker's log).
	cpuMs [3]float64
	// peakKB is the worker's peak resident memory.
	peakKB int
}

func (r e2eRun) cpu() float64 { return r.cpuMs[0] + r.cpuMs[1] + r.cpuMs[2] }

// endToEnd runs a worker process with args and measures it over
// bulkImports members. It fails unless the sandbox imported each member
// once, refusing none.
func endToEnd(b *testing.B, r *testkit.Redis, sb *testkit.Sandbox, tag string, args ...string) e2eRun {
	b.Helper()
	queue := r.Queue(b)
	w := startWorker(b, r, sb, queue, args...)
	before := stats(b, sb)
	bulk(b, r, queue, members(tag+"w", warmImports), w)
	pids := []int{w.Process.Pid, sb.PID, os.Getpid()}
	var cpu [3]time.Duration
	for i, pid := range pids {
		cpu[i] = testkit.CPUTime(b, pid)
	}
	d := bulk(b, r, queue, members(tag, bulkImports), w)
	run := e2eRun{rate: bulkImports / d.Seconds()}
	for i, pid := range pids {
		run.cpuMs[i] = ms(testkit.CPUTime(b, pid)-cpu[i]) / bulkImports
	}
	after := stats(b, sb)
	run.peakKB = vmHWM(b, w.Process.Pid)
	w.Stop(b)
	if got := after.Imports - before.Imports; got != warmImports+bulkImports {
		b.Fatalf("sandbox imported %d members, want %d", got, warmImports+bulkImports)
	}
	if got := after.Members - before.Members; got != warmImports+bulkImports {
		b.Fatalf("sandbox holds %d new members, want %d", got, warmImports+bulkImports)
	}
	if !maps.Equal(before.Refusals, after.Refusals) {
		b.Fatalf("sandbox refused calls in a fault-free run: before %v, after %v", before.Refusals, after.Refusals)
	}
	return run
}

// vmHWM is the peak resident set of process pid, in kB.
func vmHWM(b *testing.B, pid int) int {
	b.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				b.Fatalf("VmHWM: %q: %v", v, err)
			}
			return kb
		}
	}
	b.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// latency enqueues latencyImports members at latencyRate a second, one by
// one, into a worker at its default concurrency, and returns the 50th and
// 99th percentiles of the time from just before each enqueue to the poll
// that first finds the task completed. asynq stamps completed_at in whole
// seconds, so a poller asks asynq for the state of every task not yet
// completed, every millisecond: a latency is late by at most one poll
// round (about a millisecond plus a Redis round trip per task in flight).
func latency(b *testing.B, r *testkit.Redis, sb *testkit.Sandbox, tag string) (p50, p99 time.Duration) {
	b.Helper()
	queue := r.Queue(b)
	w := startWorker(b, r, sb, queue)
	defer w.Stop(b)
	p := producer(b, r, queue)
	insp := asynq.NewInspector(r.Opt)
	defer insp.Close()
	ctx := testkit.Context(b)

	var (
		mu       sync.Mutex
		inFlight = map[string]time.Time{} // out_request_no → enqueued at
		all      bool                     // every member is enqueued
		lat      []time.Duration
		pollErr  error
	)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		deadline := time.Now().Add(waitFor)
		for {
			mu.Lock()
			ids, done := slices.Collect(maps.Keys(inFlight)), all && len(inFlight) == 0
			mu.Unlock()
			if done {
				return
			}
			for _, id := range ids {
				info, err := insp.GetTaskInfo(queue, id)
				if err != nil {
					mu.Lock()
					pollErr = err
					mu.Unlock()
					return
				}
				if info.State == asynq.TaskStateCompleted {
					mu.Lock()
					lat = append(lat, time.Since(inFlight[id]))
					delete(inFlight, id)
					mu.Unlock()
				}
			}
			if time.Now().After(deadline) {
				mu.Lock()
				pollErr = fmt.Errorf("%d imports not completed within %s", len(inFlight), waitFor)
				mu.Unlock()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()

	tick := time.NewTicker(time.Second / latencyRate)
	defer tick.Stop()
	for _, m := range members(tag, latencyImports) {
		<-tick.C
		at := time.Now()
		if dup, err := p.Enqueue(ctx, m); dup || err != nil {
			b.Fatalf("enqueue %s: duplicate=%v err=%v", m.OutRequestNo, dup, err)
		}
		mu.Lock()
		inFlight[m.OutRequestNo] = at
		mu.Unlock()
	}
	mu.Lock()
	all = true
	mu.Unlock()
	<-polled
	if pollErr != nil {
		b.Fatalf("latency: %v\nworker log (tail):\n%s", pollErr, tail(w.Out.String()))
	}
	slices.Sort(lat)
	return quantile(lat, 0.50), quantile(lat, 0.99)
}

// quantile is the nearest-rank q-quantile of sorted.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[max(0, int(math.Ceil(q*float64(len(sorted))))-1)]
}

func tail(s string) string { return s[max(0, len(s)-4000):] }

package enqueuecmd

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/tasks"
)

// Benchmarks of `enqueue file` against the Redis of REDIS_URL (bench/
// enqueue-file.sh starts a private one). Figures are printed with
// b.ReportMetric; ns/op is one whole import and means little on its own.
//
//	go test -run '^$' -bench 'EnqueueFile' -benchtime 3x ./internal/enqueuecmd

// writeMembers writes a CSV member file of n rows and returns its path.
func writeMembers(tb testing.TB, n int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "members.csv")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString(header)
	for i := range n {
		fmt.Fprintf(w, "pbLatjvWOibDc5-TBnbUk1pD12o0,oUpF8uMuAJO_M2pxb1Q9z%09d,,1900000001-20261128-%09d\n", i, i)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

// BenchmarkEnqueueFile200k compares `enqueue file` on 200,000 rows with a
// bare loop of asynq Client.Enqueue calls by as many goroutines, on the
// same Redis, each into a fresh queue dropped right after. The goal is
// ratio ≥ 0.9: reading, validating and sharding the file must cost next
// to nothing beside the Redis round trips.
func BenchmarkEnqueueFile200k(b *testing.B) {
	const rows = 200_000
	r := testkit.NewRedis(b)
	path := writeMembers(b, rows)
	payloads := make([][]byte, rows)
	for i := range rows {
		payloads[i] = fmt.Appendf(nil, `{"card_id":"pbLatjvWOibDc5-TBnbUk1pD12o0","openid":"oUpF8uMuAJO_M2pxb1Q9z%09d","out_request_no":"1900000001-20261128-%09d"}`, i, i)
	}
	env := map[string]string{"REDIS_URL": r.URL}
	var fileTime, bareTime time.Duration
	b.ReportAllocs()
	runFile := func() time.Duration {
		q := r.Queue(b)
		defer dropAndSettle(b, r, q)
		var stdout, stderr strings.Builder
		start := time.Now()
		code := Run(context.Background(), []string{"file", "--queue", q, "--concurrency", fmt.Sprint(defaultConcurrency), path},
			func(k string) string { return env[k] }, nil, &stdout, &stderr)
		d := time.Since(start)
		if code != 0 || !summarises(stdout.String(), rows) {
			b.Fatalf("enqueue file: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
		}
		return d
	}
	runBare := func() time.Duration {
		q := r.Queue(b)
		defer dropAndSettle(b, r, q)
		return bareEnqueue(b, r.Opt, q, payloads, defaultConcurrency)
	}
	i := 0
	for b.Loop() {
		// Each on a fresh queue, taking turns at going first, so that
		// neither gains from a warmer or emptier Redis.
		if i%2 == 0 {
			bareTime += runBare()
			fileTime += runFile()
		} else {
			fileTime += runFile()
			bareTime += runBare()
		}
		i++
	}
	n := float64(b.N) * rows
	fileRate, bareRate := n/fileTime.Seconds(), n/bareTime.Seconds()
	b.ReportMetric(fileRate, "file_rows/s")
	b.ReportMetric(bareRate, "bare_rows/s")
	b.ReportMetric(fileRate/bareRate, "ratio")
}

// summarises says whether out is what `enqueue file` prints when all rows
// were enqueued: the run's line, then the summary.
func summarises(out string, rows int) bool {
	run, summary, ok := strings.Cut(out, "\n")
	return ok && strings.HasPrefix(run, "run=") && summary == fmt.Sprintf("enqueued=%d duplicates=0 invalid=0\n", rows)
}

// dropAndSettle drops queue q and waits until Redis has freed it: UNLINK
// frees in a background thread, which would otherwise take CPU from the
// next measurement on a small machine.
func dropAndSettle(b *testing.B, r *testkit.Redis, q string) {
	r.DropQueue(q)
	rc, ok := r.Opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return
	}
	defer rc.Close()
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		info, err := rc.Info(ctx, "memory").Result()
		if err != nil || !strings.Contains(info, "lazyfree_pending_objects:") || strings.Contains(info, "lazyfree_pending_objects:0\r") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Logf("redis still freeing queue %s", q)
}

// bareEnqueue enqueues payloads into queue q with workers goroutines
// calling asynq's Client.Enqueue with the options of an import task, and
// returns the time it took.
func bareEnqueue(b *testing.B, opt asynq.RedisConnOpt, q string, payloads [][]byte, workers int) time.Duration {
	client := asynq.NewClient(opt)
	defer client.Close()
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(payloads)); i = next.Add(1) - 1 {
				task := asynq.NewTask(tasks.TypeImport, payloads[i],
					asynq.TaskID(fmt.Sprintf("1900000001-20261128-%09d", i)), asynq.Queue(q),
					asynq.MaxRetry(tasks.DefaultMaxRetry+1), asynq.Timeout(tasks.DefaultTimeout), asynq.Retention(tasks.DefaultRetention))
				if _, err := client.Enqueue(task); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	if err, _ := failed.Load().(error); err != nil {
		b.Fatalf("bare enqueue: %v", err)
	}
	return d
}

// childEnv makes the test binary run `enqueue` instead of the tests (see
// TestMain), so that a benchmark can measure a process doing nothing else.
const childEnv = "ENQUEUE_BENCH_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		args := os.Args[1:]
		for i, a := range args {
			if a == "--" {
				args = args[i+1:]
				break
			}
		}
		code := Run(context.Background(), args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
		if err := writePeakMemory(os.Getenv(childEnv)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// writePeakMemory writes the process's peak resident memory (VmHWM, in
// kB) to path. The rusage of a waited child would not do: Linux carries
// the parent's high-water mark over fork and exec.
func writePeakMemory(path string) error {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return os.WriteFile(path, []byte(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))), 0o600)
		}
	}
	return fmt.Errorf("no VmHWM in /proc/self/status")
}

// BenchmarkEnqueueFilePeakMemory runs `enqueue file` in a process of its
// own and reports its peak resident memory (the process's VmHWM), which
// must stay under 64 MB for 1,000,000 rows and be about the same for
// 100,000: the file is streamed, and Redis, not the process, holds what
// was enqueued.
func BenchmarkEnqueueFilePeakMemory(b *testing.B) {
	for _, rows := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) { benchPeakMemory(b, rows) })
	}
}

func benchPeakMemory(b *testing.B, rows int) {
	r := testkit.NewRedis(b)
	if r.Embedded != nil {
		b.Skip("needs REDIS_URL: an embedded Redis would live in the measured process's memory")
	}
	path := writeMembers(b, rows)
	var peak int64
	var elapsed time.Duration
	for b.Loop() {
		q := r.Queue(b)
		cmd := exec.Command(os.Args[0], "-test.run=^$", "--", "file", "--queue", q, path)
		hwm := filepath.Join(b.TempDir(), "hwm")
		cmd.Env = append(os.Environ(), childEnv+"="+hwm, "REDIS_URL="+r.URL)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		out, err := cmd.Output()
		elapsed += time.Since(start)
		if err != nil || !summarises(string(out), rows) {
			b.Fatalf("enqueue file: %v, stdout %q, stderr %q", err, out, stderr.String())
		}
		data, err := os.ReadFile(hwm)
		if err != nil {
			b.Fatal(err)
		}
		kb, err := strconv.ParseInt(string(data), 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		peak = max(peak, kb*1024)
		dropAndSettle(b, r, q)
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak_rss_MB")
	b.ReportMetric(float64(b.N)*float64(rows)/elapsed.Seconds(), "rows/s")
}

package deployment_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
	"github.com/cardimport/cardimport/tasks"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

const (
	// card is the card id of WeChat's own examples.
	card = "pbLatjvWOibDc5-TBnbUk1pD12o0"
	// rateLimit is WECHATPAY_RATE_LIMIT: far above what two cores carry,
	// so that the benchmarks measure capacity, not WeChat's limit.
	rateLimit = "100000"
	// waitFor bounds every wait.
	waitFor = 5 * time.Minute
)

// members returns n members no other run uses; openids starting with
// prefix (wechatpaytest.OpenIDPrefixNoTrade for members WeChat refuses).
func members(tag, prefix string, n int) []tasks.Payload {
	ms := make([]tasks.Payload, n)
	for i := range ms {
		ms[i] = tasks.Payload{
			CardID:       card,
			OpenID:       fmt.Sprintf("%s%s%07d", prefix, tag, i),
			OutRequestNo: fmt.Sprintf("1900000001-%s-%07d", tag, i),
		}
	}
	return ms
}

// sandbox is a wechatpay-sandbox process, fault-free.
type sandbox struct {
	pid int
	// env is its env file: the worker's WECHATPAY_* variables.
	env map[string]string
}

// startSandbox runs cmd/wechatpay-sandbox on a free port.
func startSandbox(b *testing.B) *sandbox {
	b.Helper()
	dir := b.TempDir()
	p := testkit.Start(b, "wechatpay-sandbox", nil, "--addr", "127.0.0.1:0", "--dir", dir)
	waitOutput(b, p, "listening on ")
	env, err := wechatpaytest.ReadEnvFile(filepath.Join(dir, wechatpaytest.FileEnv))
	if err != nil {
		b.Fatal(err)
	}
	return &sandbox{pid: p.Process.Pid, env: env}
}

// waitOutput waits until p has written want.
func waitOutput(b *testing.B, p *testkit.Process, want string) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.Out.String(), want) {
		if time.Now().After(deadline) {
			b.Fatalf("%s did not write %q within 30s:\n%s", p.Path, want, p.Out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startWorker runs a worker process on queue of the Redis at url against
// the sandbox, with extra environment, and waits until it works.
func startWorker(b *testing.B, url string, sb *sandbox, queue string, extra map[string]string) *testkit.Process {
	b.Helper()
	vars := maps.Clone(sb.env)
	vars["REDIS_URL"] = url
	vars["QUEUE"] = queue
	vars["WECHATPAY_RATE_LIMIT"] = rateLimit
	maps.Copy(vars, extra)
	p := testkit.Start(b, "worker", testkit.Environ(vars))
	waitOutput(b, p, `"message":"worker started"`)
	return p
}

// stopWorker ends the worker as an operator does.
func stopWorker(b *testing.B, p *testkit.Process) {
	b.Helper()
	_ = p.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			b.Fatalf("worker exit: %v\n%s", err, p.Out)
		}
	case <-time.After(time.Minute):
		b.Fatalf("worker did not stop within a minute")
	}
}

// clockTicks is the unit of /proc/PID/stat's times: USER_HZ, 100 on every
// Linux architecture Go runs on.
const clockTicks = 100

// cpuTime is the CPU time, user and system, process pid has used.
func cpuTime(b *testing.B, pid int) time.Duration {
	b.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields follow the command name in parentheses, which may hold
	// spaces: utime is field 14, stime 15.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", pid, stat)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// cpuOf sums cpuTime over pids.
func cpuOf(b *testing.B, pids []int) time.Duration {
	var d time.Duration
	for _, pid := range pids {
		d += cpuTime(b, pid)
	}
	return d
}

// ctx is a context bounded by waitFor.
func ctx(b *testing.B) context.Context {
	c, cancel := context.WithTimeout(context.Background(), waitFor)
	b.Cleanup(cancel)
	return c
}

package testkit

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

// WaitOutput waits until p has written want, and fails tb, with what p
// wrote, if it has not within 30 s.
func (p *Process) WaitOutput(tb testing.TB, want string) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.Out.String(), want) {
		if time.Now().After(deadline) {
			tb.Fatalf("%s did not write %q within 30s:\n%s", p.Path, want, p.Out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop ends p as an operator does, with SIGTERM, and fails tb unless it
// exits cleanly within a minute.
func (p *Process) Stop(tb testing.TB) {
	tb.Helper()
	_ = p.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			tb.Fatalf("%s exit: %v\n%s", p.Path, err, p.Out)
		}
	case <-time.After(time.Minute):
		tb.Fatalf("%s did not stop within a minute", p.Path)
	}
}

// Sandbox is a cmd/wechatpay-sandbox process, started by StartSandbox.
type Sandbox struct {
	Proc *Process
	// PID is its process ID.
	PID int
	// URL is its base URL.
	URL string
	// Env is the env file it wrote: a worker's WECHATPAY_* variables.
	Env map[string]string
}

// StartSandbox runs cmd/wechatpay-sandbox on a free port, fault-free, as
// an operator load-testing would, and reads the env file it writes. The
// package's TestMain must call Main.
func StartSandbox(tb testing.TB) *Sandbox {
	tb.Helper()
	dir := tb.TempDir()
	p := Start(tb, "wechatpay-sandbox", nil, "--addr", "127.0.0.1:0", "--dir", dir)
	p.WaitOutput(tb, "listening on ")
	env, err := wechatpaytest.ReadEnvFile(filepath.Join(dir, wechatpaytest.FileEnv))
	if err != nil {
		tb.Fatal(err)
	}
	return &Sandbox{Proc: p, PID: p.Process.Pid, URL: env[wechatpaytest.EnvBaseURL], Env: env}
}

// clockTicks is the unit of /proc/PID/stat's times: USER_HZ, 100 on every
// Linux architecture Go runs on.
const clockTicks = 100

// CPUTime is the CPU time, user and system, process pid has used.
func CPUTime(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields follow the command name in parentheses, which may hold
	// spaces: utime is field 14, stime 15.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		tb.Fatalf("/proc/%d/stat: %q", pid, stat)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks
}

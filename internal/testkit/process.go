package testkit

// The project's commands run as real processes for tests and benchmarks
// (SIGKILL, several workers, the fault suite, throughput): the environment
// a worker needs to import from a queue into an emulator, and processes
// whose output is kept and which are killed when the test ends.

import (
	"os"
	"os/exec"
	"testing"

	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

// WorkerEnv is the environment of a worker that imports from queue on r
// into srv: the variables of the env file the emulator writes with its
// keys, as an operator's would, plus REDIS_URL and QUEUE.
func WorkerEnv(tb testing.TB, srv *wechatpaytest.Server, r *Redis, queue string) map[string]string {
	tb.Helper()
	env, err := srv.Keys.WriteDir(tb.TempDir(), srv.URL)
	if err != nil {
		tb.Fatal(err)
	}
	env["REDIS_URL"] = r.URL
	env["QUEUE"] = queue
	return env
}

// Environ turns vars into the NAME=value list of a process's environment.
func Environ(vars map[string]string) []string {
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// Process is a command started by Start.
type Process struct {
	*exec.Cmd
	// Out holds what the process wrote to stdout and stderr.
	Out *Buffer
}

// Start runs cmd/NAME, built by Command (the package's TestMain must call
// Main), with env and args. The test's cleanup kills it.
func Start(tb testing.TB, name string, env []string, args ...string) *Process {
	tb.Helper()
	bin, err := Command(name)
	if err != nil {
		tb.Fatal(err)
	}
	p := &Process{Cmd: exec.Command(bin, args...), Out: &Buffer{}}
	p.Env = env
	p.Stdout, p.Stderr = p.Out, p.Out
	if err := p.Cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	tb.Cleanup(func() { _ = p.Process.Kill(); _ = p.Wait() })
	return p
}

// LongEnv is the variable that runs the long tests: .ci/run sets it in a
// step of its own, after the README's test command, which stays fast.
const LongEnv = "LONG"

// Long skips a test that takes tens of seconds (a run of thousands of
// members, a rate measured over many seconds) unless LONG=1. Such a test's
// name starts with TestLong, so `LONG=1 go test -run '^TestLong' ./...`
// runs all of them and nothing else.
func Long(tb testing.TB) {
	tb.Helper()
	if os.Getenv(LongEnv) == "" {
		tb.Skip("a long test: LONG=1 go test -run '^TestLong' ./... runs it (.ci/run does)")
	}
}

// Package redisconntest starts real Redis deployments on loopback ports for
// tests and benchmarks, with Debian's redis-server, redis-sentinel and
// redis-cli: one server, a Sentinel group (a master, its replicas and the
// sentinels that watch it) and a Redis Cluster (masters, each with its
// replicas). Every process is the test's own, in a directory of the
// test's, and is killed when the test ends; any of them can be SIGKILLed
// mid-run. Every wait is bounded.
//
// Without redis-server in PATH the test is skipped, unless
// FAULTS_REQUIRE_REDIS_SERVER is set (CI sets it, and installs the
// packages): then it fails.
package redisconntest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cardimport/cardimport/internal/testkit"
)

// startTimeout bounds the wait for a process to answer.
const startTimeout = 15 * time.Second

// Server is one redis-server (or sentinel) process on 127.0.0.1.
type Server struct {
	// Addr is 127.0.0.1:Port.
	Addr string
	Port int
	// Dir holds its files (its config, AOF, nodes.conf).
	Dir string

	args []string
	tls  *TLS
	mu   sync.Mutex
	cmd  *exec.Cmd
	log  *testkit.Buffer
}

// lookPath finds a binary, or skips (fails under
// FAULTS_REQUIRE_REDIS_SERVER) the test.
func lookPath(tb testing.TB, name string) string {
	tb.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("FAULTS_REQUIRE_REDIS_SERVER") != "" {
			tb.Fatalf("FAULTS_REQUIRE_REDIS_SERVER is set but %v", err)
		}
		tb.Skipf("%s is not in PATH; this test starts Redis servers of its own", name)
	}
	return bin
}

// StartServer starts a redis-server on a spare port with args added to
// its command line (after the port, the bind address, the directory, and
// persistence off: pass "--appendonly", "yes" for AOF), and waits until it
// answers. The test's cleanup kills it.
func StartServer(tb testing.TB, args ...string) *Server {
	tb.Helper()
	return startServer(tb, nil, args...)
}

// startServer is StartServer, speaking TLS only when t is not nil (no
// plain port; replication on TLS too).
func startServer(tb testing.TB, t *TLS, args ...string) *Server {
	tb.Helper()
	bin := lookPath(tb, "redis-server")
	s := newServer(tb)
	listen := []string{"--port", strconv.Itoa(s.Port)}
	if t != nil {
		s.tls = t
		listen = t.serverArgs(strconv.Itoa(s.Port))
	}
	s.args = append(append([]string{bin}, listen...), "--bind", "127.0.0.1", "--dir", s.Dir,
		"--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction")
	s.args = append(s.args, args...)
	s.Start(tb)
	return s
}

// newServer picks a port and a directory.
func newServer(tb testing.TB) *Server {
	tb.Helper()
	return newServerOn(tb, SparePort(tb))
}

// newServerOn is newServer on port.
func newServerOn(tb testing.TB, port int) *Server {
	tb.Helper()
	s := &Server{Port: port, Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: tb.TempDir()}
	tb.Cleanup(func() { s.Kill() })
	return s
}

// SparePort returns a free port below Linux's ephemeral range (32768 and
// up): while a server is down, the clients' outgoing connections could
// otherwise take its port as their local one.
func SparePort(tb testing.TB) int {
	tb.Helper()
	return sparePort(tb, 20000, 32000, 0)
}

// sparePort returns a free port from lo to hi whose port+also is free
// too (a cluster node's bus port is its port + 10000).
func sparePort(tb testing.TB, lo, hi, also int) int {
	tb.Helper()
	free := func(port int) bool {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return false
		}
		_ = l.Close()
		return true
	}
	for range 200 {
		port := lo + rand.IntN(hi-lo)
		if free(port) && (also == 0 || free(port+also)) {
			return port
		}
	}
	tb.Fatalf("no spare port between %d and %d", lo, hi)
	return 0
}

// Start runs the server (again, after Kill: on the same port and files)
// and waits until it answers PING.
func (s *Server) Start(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	s.log = &testkit.Buffer{}
	s.cmd = exec.Command(s.args[0], s.args[1:]...)
	s.cmd.Dir = s.Dir
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	err := s.cmd.Start()
	s.mu.Unlock()
	if err != nil {
		tb.Fatalf("start %s: %v", s.args[0], err)
	}
	rdb := s.Client()
	defer rdb.Close()
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s on port %d does not answer: %v\n%s", filepath.Base(s.args[0]), s.Port, err, s.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill SIGKILLs the server: no shutdown, no last write. It does nothing
// to a server that is not running.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Pause stops the server (SIGSTOP) until Resume: it neither answers nor
// replicates, as a server on a stalled host or behind a congested link.
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return fmt.Errorf("%s is not running", s.Addr)
	}
	return s.cmd.Process.Signal(sig)
}

// Pid is the server's process ID, 0 when it is not running.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Log returns what the server wrote.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return ""
	}
	return s.log.String()
}

// Client returns a client of this one server, which the caller closes.
// It does not retry, so that a dead server shows at once.
func (s *Server) Client() *redis.Client {
	opt := &redis.Options{Addr: s.Addr, MaxRetries: -1, Protocol: 2, DialTimeout: time.Second}
	if s.tls != nil {
		opt.TLSConfig = s.tls.Config
	}
	return redis.NewClient(opt)
}

// Do runs one command on this server with a bounded wait.
func (s *Server) Do(ctx context.Context, args ...any) (any, error) {
	rdb := s.Client()
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := rdb.Do(ctx, args...).Result()
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %w", s.Addr, args[0], err)
	}
	return v, nil
}

// waitFor polls cond every 50 ms until it holds or timeout passes, and
// returns cond's last error.
func waitFor(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

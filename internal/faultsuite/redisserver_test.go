package faultsuite_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/cardimport/cardimport/internal/redisconn"
	"github.com/cardimport/cardimport/internal/testkit"
)

// redisServer is a redis-server process of the test's own, on a spare
// port, with its append-only file in a directory of the test's: it can be
// killed and started again on the same data.
type redisServer struct {
	*testkit.Redis
	bin, dir string
	port     int
	cmd      *exec.Cmd
	log      *testkit.Buffer
}

// startRedisServer starts a Redis with AOF and fsync at every write, so
// that a SIGKILL loses nothing it acknowledged. Without redis-server in
// PATH the test is skipped, unless FAULTS_REQUIRE_REDIS_SERVER is set (CI
// sets it, and installs redis-server).
func startRedisServer(t *testing.T) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("FAULTS_REQUIRE_REDIS_SERVER") != "" {
			t.Fatalf("FAULTS_REQUIRE_REDIS_SERVER is set but %v", err)
		}
		t.Skip("redis-server is not in PATH; this scenario restarts a Redis of its own")
	}
	port := sparePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	r := &redisServer{
		Redis: &testkit.Redis{Opt: redisconn.ClientOpt{RedisClientOpt: asynq.RedisClientOpt{Addr: addr}}, URL: "redis://" + addr + "/0"},
		bin:   bin, dir: t.TempDir(), port: port,
	}
	r.start(t)
	t.Cleanup(func() {
		if r.cmd != nil {
			_ = r.cmd.Process.Kill()
			_ = r.cmd.Wait()
		}
	})
	return r
}

// sparePort returns a free port below Linux's ephemeral range (32768 and
// up): while Redis is down for the restart, the workers' outgoing
// connections could otherwise take its port as their local one.
func sparePort(t *testing.T) int {
	t.Helper()
	for range 100 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			_ = l.Close()
			return port
		}
	}
	t.Fatal("no spare port between 20000 and 32000")
	return 0
}

// start runs the server on its port and files and waits until it answers.
func (r *redisServer) start(t *testing.T) {
	t.Helper()
	r.log = &testkit.Buffer{}
	r.cmd = exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--dir", r.dir, "--appendonly", "yes", "--appendfsync", "always", "--save", "",
		"--maxmemory-policy", "noeviction")
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(r.port), MaxRetries: -1})
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := rdb.Ping(context.Background()).Err()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on port %d does not answer: %v\n%s", r.port, err, r.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill SIGKILLs the server: no shutdown, no final write.
func (r *redisServer) kill(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Kill(); err != nil {
		t.Fatal(fmt.Errorf("kill redis-server: %w", err))
	}
	_ = r.cmd.Wait()
	r.cmd = nil
}

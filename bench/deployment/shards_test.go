package deployment_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/cardimport/cardimport/internal/redisconn"
	"github.com/cardimport/cardimport/internal/redisconn/redisconntest"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/tasks"
)

// shardMembers is how many members each of the three queues gets in one
// timed run; shardWarm go through each queue's workers first, untimed.
const (
	shardMembers = 2000
	shardWarm    = 200
)

// deployment is a Redis the benchmark runs against.
type deployment struct {
	name string
	url  string
	opt  asynq.RedisConnOpt
	// pids are the Redis server processes, whose CPU is measured.
	pids []int
	// queues returns three fresh queue names (one a master on a
	// cluster).
	queues func(tag string) []string
}

// shardRun is what one run measured.
type shardRun struct {
	rate                   float64 // imports a second, all queues
	worker, redis, sandbox float64 // CPU ms an import
}

// BenchmarkShards runs 1, 2 and 4 worker processes a queue (3, 6 and 12
// processes) over three queues, on a three-master Redis Cluster (a queue
// a master, redis-cluster://) and on one Redis server (redis://), against
// a wechatpay-sandbox process, and reports for each the imports a second
// of all three queues and the CPU an import of the workers, the Redis
// servers and the sandbox. Each run enqueues 2,000 members a queue at
// once, after 200 a queue through the same workers untimed.
//
// On one 2-core machine every process shares the same two cores, so more
// processes and more masters show their overhead, not the scale they give
// on machines of their own: read CPU an import, not imports a second, for
// what a shard costs. Run it with -benchtime 1x (bench/shards.sh); it needs
// redis-server and redis-cli in PATH.
func BenchmarkShards(b *testing.B) {
	sb := testkit.StartSandbox(b)
	single := redisconntest.StartServer(b)
	cluster := redisconntest.StartCluster(b, 3, 0)
	deployments := []deployment{
		{name: "one_server", url: "redis://" + single.Addr + "/0", pids: []int{single.Pid()},
			queues: func(tag string) []string {
				return []string{tag + "-a", tag + "-b", tag + "-c"}
			}},
		{name: "cluster3", url: cluster.URL, opt: cluster.Opt, pids: pidsOf(cluster.Nodes),
			queues: func(tag string) []string { return cluster.SpreadQueues(b, tag) }},
	}
	for i := range deployments {
		d := &deployments[i]
		if d.opt == nil {
			opt, err := redisconn.Parse("REDIS_URL", d.url)
			if err != nil {
				b.Fatal(err)
			}
			d.opt = opt
		}
	}
	for n := range b.N {
		for _, d := range deployments {
			for _, k := range []int{1, 2, 4} {
				tag := fmt.Sprintf("sh%d%s%d%s", n, d.name[:1], k, randomTag())
				run := shards(b, d, sb, tag, k)
				b.Logf("%-10s %d worker(s) a queue (%2d processes): %6.1f imports/s; CPU an import: workers %.2f ms, redis %.3f ms, sandbox %.2f ms",
					d.name, k, 3*k, run.rate, run.worker, run.redis, run.sandbox)
				unit := fmt.Sprintf("%s_w%d", d.name, k)
				b.ReportMetric(run.rate, unit+"_imports/s")
				b.ReportMetric(run.worker, unit+"_worker_cpu_ms/import")
				b.ReportMetric(run.redis, unit+"_redis_cpu_ms/import")
				b.ReportMetric(run.sandbox, unit+"_sandbox_cpu_ms/import")
			}
		}
	}
}

// pidsOf returns the servers' process IDs.
func pidsOf(servers []*redisconntest.Server) []int {
	var pids []int
	for _, s := range servers {
		pids = append(pids, s.Pid())
	}
	return pids
}

// randomTag keeps queue names apart between runs.
func randomTag() string {
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// shards starts k workers on each of d's three queues, warms them up, then
// times shardMembers a queue enqueued at once.
func shards(b *testing.B, d deployment, sb *testkit.Sandbox, tag string, k int) shardRun {
	b.Helper()
	queues := d.queues(tag)
	rdb, err := redisconn.Client(d.opt)
	if err != nil {
		b.Fatal(err)
	}
	defer rdb.Close()
	client := asynq.NewClientFromRedisClient(rdb)
	var workers []*testkit.Process
	for _, q := range queues {
		for range k {
			workers = append(workers, startWorker(b, d.url, sb, q, nil))
		}
	}
	defer func() {
		for _, w := range workers {
			w.Stop(b)
		}
	}()
	var workerPids []int
	for _, w := range workers {
		workerPids = append(workerPids, w.Process.Pid)
	}
	bulk(b, rdb, client, queues, tag+"w", shardWarm)
	w0, r0, s0 := cpuOf(b, workerPids), cpuOf(b, d.pids), testkit.CPUTime(b, sb.PID)
	took := bulk(b, rdb, client, queues, tag, shardMembers)
	n := float64(len(queues) * shardMembers)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / n }
	return shardRun{
		rate:    n / took.Seconds(),
		worker:  ms(cpuOf(b, workerPids) - w0),
		redis:   ms(cpuOf(b, d.pids) - r0),
		sandbox: ms(testkit.CPUTime(b, sb.PID) - s0),
	}
}

// bulk enqueues n members into each queue at once and waits until every
// one is completed; it returns the time from the first enqueue to the
// last completion.
func bulk(b *testing.B, rdb redis.UniversalClient, client *asynq.Client, queues []string, tag string, n int) time.Duration {
	b.Helper()
	c := ctx(b)
	want := map[string]int64{}
	for _, q := range queues {
		done, err := rdb.ZCard(c, "asynq:{"+q+"}:completed").Result()
		if err != nil {
			b.Fatal(err)
		}
		want[q] = done + int64(n)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(queues))
	for _, q := range queues {
		wg.Go(func() {
			p, err := tasks.NewProducer(client, tasks.WithTaskOptions(tasks.WithQueue(q)))
			if err != nil {
				errs <- err
				return
			}
			res, err := p.EnqueueMany(c, members(tag+strings.TrimPrefix(q, tag), "oUpF8uMuAJO", n))
			if err != nil {
				errs <- err
				return
			}
			for _, r := range res {
				if r.Err != nil || r.Duplicate {
					errs <- fmt.Errorf("%s: member %d: duplicate=%v err=%v", q, r.Index, r.Duplicate, r.Err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	deadline := start.Add(waitFor)
	for _, q := range queues {
		for {
			got, err := rdb.ZCard(c, "asynq:{"+q+"}:completed").Result()
			if err != nil {
				b.Fatal(err)
			}
			if got >= want[q] {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s: %d of %d completed within %s", q, got-want[q]+int64(n), n, waitFor)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return time.Since(start)
}

package deployment_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/cardimport/cardimport/internal/redisconn"
	"github.com/cardimport/cardimport/internal/redisconn/redisconntest"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/webhook"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
	"github.com/cardimport/cardimport/results"
	"github.com/cardimport/cardimport/tasks"
)

// sizingMembers is how many members each phase of BenchmarkSizing
// imports; sizingDead how many WeChat refuses in the dead phase.
const (
	sizingMembers = 10000
	sizingDead    = 2000
)

// BenchmarkSizing measures, on a Redis server of its own (nothing else in
// it), what the queue costs in Redis memory, as INFO memory's used_memory
// grows with each phase divided by the members of the phase, measured
// with no worker connected (their connections' buffers left out):
//
//   - pending_B: a task waiting (10,000 enqueued into a run, by the Go
//     producer);
//   - finished_B: a member imported, kept: the task with its result in
//     asynq's completed set (for the task retention, 72 h by default), its
//     outcome in the results stream and its share of the run (for
//     RESULTS_RETENTION, 30 days);
//   - outcome_B: of which the outcome event (MEMORY USAGE of the stream over
//     its entries); task_kept_B = finished_B - outcome_B;
//   - webhook_B: a webhook delivery kept (24 h) beside it, with WEBHOOK_URL
//     set (another 10,000 members, their deliveries to a local receiver);
//   - dead_B: a member WeChat refused (2,000 of them): the archived task,
//     its dead-letter record and index entry, and its outcome;
//     dead_letter_B is the record and index entry (MEMORY USAGE),
//     archived_task_B the rest but the outcome.
//
// It also reports redis_cpu_ms/import, Redis's CPU an import over the
// first phase, whose inverse is the imports a second one master's core
// carries. Run it with -benchtime 1x (bench/sizing.sh); it needs
// redis-server in PATH.
func BenchmarkSizing(b *testing.B) {
	sb := testkit.StartSandbox(b)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	b.Cleanup(hook.Close)
	for n := range b.N {
		srv := redisconntest.StartServer(b)
		url := "redis://" + srv.Addr + "/0"
		opt, err := redisconn.Parse("REDIS_URL", url)
		if err != nil {
			b.Fatal(err)
		}
		rdb, err := redisconn.Client(opt)
		if err != nil {
			b.Fatal(err)
		}
		client := asynq.NewClientFromRedisClient(rdb)
		c := ctx(b)
		tag := fmt.Sprintf("sz%d", n)

		// Pending, then finished.
		q := tag + "-plain"
		m0 := usedMemory(b, rdb)
		enqueueRun(b, rdb, client, q, members(tag+"p", "oUpF8uMuAJO", sizingMembers))
		m1 := usedMemory(b, rdb)
		cpu0 := testkit.CPUTime(b, srv.Pid())
		work(b, url, sb, q, nil, func() bool { return completed(b, rdb, q) >= sizingMembers })
		cpu := testkit.CPUTime(b, srv.Pid()) - cpu0
		m2 := usedMemory(b, rdb)
		stream, err := rdb.MemoryUsage(c, results.StreamKey(q), 0).Result()
		if err != nil {
			b.Fatal(err)
		}
		pending := float64(m1-m0) / sizingMembers
		finished := float64(m2-m0) / sizingMembers
		outcome := float64(stream) / sizingMembers

		// With webhooks.
		q = tag + "-webhook"
		m3 := usedMemory(b, rdb)
		enqueueRun(b, rdb, client, q, members(tag+"w", "oUpF8uMuAJO", sizingMembers))
		work(b, url, sb, q, map[string]string{"WEBHOOK_URL": hook.URL, "WEBHOOK_SECRET": "sizing-webhook-secret"}, func() bool {
			return completed(b, rdb, q) >= sizingMembers && completed(b, rdb, webhook.QueueFor(q)) >= sizingMembers
		})
		m4 := usedMemory(b, rdb)
		withHook := float64(m4-m3) / sizingMembers

		// Dead.
		q = tag + "-dead"
		m5 := usedMemory(b, rdb)
		enqueueRun(b, rdb, client, q, members(tag+"d", wechatpaytest.OpenIDPrefixNoTrade, sizingDead))
		work(b, url, sb, q, nil, func() bool { return archived(b, rdb, q) >= sizingDead })
		m6 := usedMemory(b, rdb)
		dead := float64(m6-m5) / sizingDead
		// The dead-letter store's share: its records and its index.
		var record int64
		for _, m := range members(tag+"d", wechatpaytest.OpenIDPrefixNoTrade, sizingDead) {
			n, err := rdb.MemoryUsage(c, "cardimport:{"+q+"}:dead:"+m.OutRequestNo, 0).Result()
			if err != nil {
				b.Fatal(err)
			}
			record += n
		}
		index, err := rdb.MemoryUsage(c, "cardimport:{"+q+"}:dead", 0).Result()
		if err != nil {
			b.Fatal(err)
		}
		letter := float64(record+index) / sizingDead

		b.Logf("pending task %.0f B; finished member kept %.0f B (task %.0f B, outcome %.0f B); webhook delivery kept %.0f B; dead member %.0f B (dead letter %.0f B, archived task %.0f B, outcome); redis CPU %.3f ms an import",
			pending, finished, finished-outcome, outcome, withHook-finished, dead, letter, dead-outcome-letter, ms(cpu)/sizingMembers)
		b.ReportMetric(pending, "pending_B")
		b.ReportMetric(finished, "finished_B")
		b.ReportMetric(outcome, "outcome_B")
		b.ReportMetric(finished-outcome, "task_kept_B")
		b.ReportMetric(withHook-finished, "webhook_B")
		b.ReportMetric(dead, "dead_B")
		b.ReportMetric(letter, "dead_letter_B")
		b.ReportMetric(dead-outcome-letter, "archived_task_B")
		b.ReportMetric(ms(cpu)/sizingMembers, "redis_cpu_ms/import")
		_ = client.Close()
		srv.Kill()
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// usedMemory is INFO memory's used_memory.
func usedMemory(b *testing.B, rdb redis.UniversalClient) int64 {
	b.Helper()
	info, err := rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("INFO memory has no used_memory")
	return 0
}

// enqueueRun enqueues ms into queue q, in a run, as the Go producer does.
func enqueueRun(b *testing.B, rdb redis.UniversalClient, client *asynq.Client, q string, ms []tasks.Payload) {
	b.Helper()
	store, err := results.New(rdb, q)
	if err != nil {
		b.Fatal(err)
	}
	p, err := tasks.NewProducer(client, tasks.WithTaskOptions(tasks.WithQueue(q)), tasks.WithRun(store, "sizing-"+q))
	if err != nil {
		b.Fatal(err)
	}
	res, err := p.EnqueueMany(ctx(b), ms)
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil || r.Duplicate {
			b.Fatalf("member %d: duplicate=%v err=%v", r.Index, r.Duplicate, r.Err)
		}
	}
	if err := store.CloseRun(ctx(b), "sizing-"+q); err != nil {
		b.Fatal(err)
	}
}

// work runs a worker on q until done, then stops it: its connections and
// server state leave Redis before the next measure.
func work(b *testing.B, url string, sb *testkit.Sandbox, q string, extra map[string]string, done func() bool) {
	b.Helper()
	w := startWorker(b, url, sb, q, extra)
	deadline := time.Now().Add(waitFor)
	for !done() {
		if time.Now().After(deadline) {
			b.Fatalf("%s: not done within %s", q, waitFor)
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.Stop(b)
	// The server's state goes with it; let Redis settle.
	time.Sleep(200 * time.Millisecond)
}

func completed(b *testing.B, rdb redis.UniversalClient, q string) int64 {
	b.Helper()
	n, err := rdb.ZCard(context.Background(), "asynq:{"+q+"}:completed").Result()
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func archived(b *testing.B, rdb redis.UniversalClient, q string) int64 {
	b.Helper()
	n, err := rdb.ZCard(context.Background(), "asynq:{"+q+"}:archived").Result()
	if err != nil {
		b.Fatal(err)
	}
	return n
}

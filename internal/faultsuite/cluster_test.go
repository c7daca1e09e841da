package faultsuite_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/redisconn/redisconntest"
	"github.com/cardimport/cardimport/internal/testkit"
)

// clusterMembers is how many importable members each of the cluster
// test's three queues gets: 3,000 in all.
const clusterMembers = members / 3

// otherQueuesPause bounds the pause of the queues whose master lives: well
// under a second here, 2.5 s when asynq's heartbeat waited for the failing
// master (redisconn.ServerStateTimeout), and the whole failover or more
// were the clients to wait for it.
const otherQueuesPause = 10 * time.Second

// TestClusterFailover: three masters with a replica each; three queues,
// one on each master, each with a worker and an `enqueue file` feeding it
// through redis-cluster://, 1,000 members each (and 10 WeChat refuses)
// with transient faults. Mid-run the master of the first queue is
// SIGKILLed; its replica takes over its slots; imports on every queue
// carry on. It reports when imports on the killed master's queue resumed
// and the longest pause of the other two, counts the acknowledged enqueues
// lost, runs each file again, which enqueues exactly those, and ends with
// every member imported once, the dead letters and the runs' counts whole.
func TestClusterFailover(t *testing.T) {
	needFaults(t)
	c := redisconntest.StartCluster(t, 3, 1)
	r := &testkit.Redis{Opt: c.Opt, URL: c.URL}
	rdb := connect(t, c.Opt)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	names := c.SpreadQueues(t, "failover")
	var qs []*failoverQueue
	for i, name := range names {
		qs = append(qs, newFailoverQueue(t, r, fmt.Sprintf("cluster-%c", 'a'+i), name, clusterMembers, failoverRefused/3))
	}
	slot := redisconntest.Slot("asynq:{" + qs[0].queue + "}:pending")
	master := c.MasterOfSlot(t, slot)
	var where []string
	for _, q := range qs {
		where = append(where, fmt.Sprintf("%s on %s (slot %d)", q.queue, c.MasterOfSlot(t, redisconntest.Slot(q.queue)).Addr, redisconntest.Slot(q.queue)))
	}
	t.Logf("faults: cluster: queues %s", strings.Join(where, ", "))

	const workers = 1
	var feeds []*feeder
	for _, q := range qs {
		q.startWorkers(workers)
		// 100 rows a second each, a little over what the worker's
		// share of the two cores carries.
		feeds = append(feeds, q.feed(100))
	}
	for deadline := time.Now().Add(recoveryLimit); feeds[0].rowsFed() < qs[0].rows()*2/5; {
		require.True(t, time.Now().Before(deadline), "fed %d rows", feeds[0].rowsFed())
		time.Sleep(10 * time.Millisecond)
	}
	imported := qs[0].srv.Members()
	master.Kill()
	killed := time.Now()
	promoted := c.WaitTakenOver(t, master, slot, time.Minute)
	promotedAt := time.Now()
	resumed := qs[0].waitResumed(killed, inFlight(workers))

	type result struct {
		enqueued, duplicates, lost, again, dup int
		idle, done                             time.Time
	}
	res := make([]result, len(qs))
	for i, q := range qs {
		res[i].enqueued, res[i].duplicates = feeds[i].wait(t)
		require.Equal(t, q.rows(), res[i].enqueued+res[i].duplicates, "%s: every row acknowledged", q.name)
	}
	for i, at := range waitAllIdle(t, insp, qs, false) {
		res[i].idle = at
	}
	for i, q := range qs {
		lost := q.lost(rdb)
		res[i].lost = len(lost)
		res[i].again, res[i].dup = q.rerun()
		require.Equal(t, len(lost), res[i].again, "%s: the second run enqueues exactly what the failover lost", q.name)
		require.Equal(t, q.rows()-len(lost), res[i].dup)
	}
	for i, at := range waitAllIdle(t, insp, qs, true) {
		res[i].done = at
	}
	t.Logf("faults: cluster: master %s of %s SIGKILLed after %d of its members were imported; replica %s took over %s after the kill; imports on %s resumed %s after the kill",
		master.Addr, qs[0].queue, imported, promoted.Addr, seconds(promotedAt.Sub(killed)), qs[0].queue, seconds(resumed.Sub(killed)))
	for i, q := range qs {
		run := q.check(rdb)
		r := res[i]
		pause := ""
		if i > 0 {
			// The other masters' queues go on through the failover; a
			// pause as long as the failover (or go-redis's minute-long
			// slot map) would mean they waited for it.
			stall := q.progress.longestStall(killed, killed.Add(15*time.Second), len(q.importable))
			require.Less(t, stall, otherQueuesPause, "%s: its imports paused while another master failed over", q.name)
			pause = fmt.Sprintf("; its longest pause from the kill on: %s", seconds(stall))
		}
		t.Logf("faults: cluster: %s (%s): enqueue file carried on (enqueued=%d duplicates=%d)%s; idle %s after the kill; acknowledged enqueues lost: %d; the same file again: enqueued=%d duplicates=%d; members imported twice: 0; all %d imported once and %d dead letters %s after the kill; the run: imported=%d dead=%d enqueued=%d",
			q.name, q.queue, r.enqueued, r.duplicates, pause, seconds(r.idle.Sub(killed)), r.lost, r.again, r.dup, len(q.importable), len(q.refused), seconds(r.done.Sub(killed)), run.Imported, run.Dead, run.Enqueued)
	}
}

package faultsuite_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/redisconn/redisconntest"
	"github.com/cardimport/cardimport/internal/testkit"
)

// asynqGlobal are asynq's keys that belong to no queue: the set of queue
// names, and the servers' and workers' heartbeats (asynq:servers:{ID} and
// asynq:workers:{ID}, tagged with the server's ID). No script or
// transaction of asynq's spans them and a queue's keys.
func asynqGlobal(key string) bool {
	switch key {
	case "asynq:queues", "asynq:servers", "asynq:workers", "asynq:schedulers":
		return true
	}
	for _, p := range []string{"asynq:servers:{", "asynq:workers:{", "asynq:schedulers:{", "asynq:scheduler_history:"} {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// TestClusterKeys: a full run on a real three-master Redis Cluster, every
// command through redis-cluster:// (everyCommand) on each of three
// queues, one a master, then SCAN every master and check each key: every key of a queue carries the queue
// as its hash tag, so it shares the queue's slot (and master) with
// asynq's; the only others are asynq's own global keys. A key of the
// project's own on another slot fails the test, as does a CROSSSLOT error
// in any process's output. It shows where each queue lands.
func TestClusterKeys(t *testing.T) {
	needFaults(t)
	c := redisconntest.StartCluster(t, 3, 0)
	r := &testkit.Redis{Opt: c.Opt, URL: c.URL}
	names := c.SpreadQueues(t, "keys")

	qs, _ := everyCommand(t, r, "keys", names)

	// Every key on every master.
	slots := map[string]int{}
	for _, q := range qs {
		slots[q.queue] = redisconntest.Slot(q.queue)
		require.Equal(t, c.Slot(t, "asynq:{"+q.queue+"}:pending"), slots[q.queue], "slotOf agrees with CLUSTER KEYSLOT")
	}
	type family struct{ tasks, asynq, dead, results, guard, webhook, other int }
	perQueue := map[string]*family{}
	var global, bad []string
	total, perServer := 0, 0
	for _, m := range c.Masters(t) {
		node := m.Client()
		iter := node.Scan(context.Background(), 0, "*", 1000).Iterator()
		for iter.Next(context.Background()) {
			key := iter.Val()
			total++
			if asynqGlobal(key) {
				if !strings.Contains(key, "{") {
					global = append(global, fmt.Sprintf("%s on %s", key, m.Addr))
				} else {
					perServer++
				}
				continue
			}
			q := queueOfKey(key, names)
			if q == "" || redisconntest.Slot(key) != slots[q] {
				// One line per family: the key up to its tag's end.
				family := key
				if end := strings.IndexByte(key, '}'); end >= 0 {
					family = key[:end+1] + "…"
				}
				if line := fmt.Sprintf("%s: slot %d on %s", family, redisconntest.Slot(key), m.Addr); !slices.Contains(bad, line) {
					bad = append(bad, line)
				}
				continue
			}
			f := perQueue[q]
			if f == nil {
				f = &family{}
				perQueue[q] = f
			}
			switch rest := key[strings.Index(key, "}")+1:]; {
			case strings.HasPrefix(key, "asynq:") && strings.HasPrefix(rest, ":t:"):
				f.tasks++
			case strings.HasPrefix(key, "asynq:") && strings.Contains(key, "webhooks"):
				f.webhook++
			case strings.HasPrefix(key, "asynq:"):
				f.asynq++
			case strings.HasPrefix(rest, ":dead"):
				f.dead++
			case strings.HasPrefix(rest, ":results") || strings.HasPrefix(rest, ":run"):
				f.results++
			case strings.HasPrefix(key, "rate:") || rest == ":circuit" || rest == ":slowdown" || rest == ":wechatpay":
				f.guard++
			default:
				f.other++
			}
		}
		require.NoError(t, iter.Err())
		_ = node.Close()
	}
	sort.Strings(bad)
	require.Empty(t, bad, "keys outside their queue's slot, or of no queue")
	for _, q := range qs {
		f := perQueue[q.queue]
		require.NotNil(t, f, q.queue)
		require.GreaterOrEqual(t, f.tasks, keysMembers+keysRefused+keysIntake, "%s: a task hash a member", q.queue)
		require.Positive(t, f.dead, "%s: dead letters", q.queue)
		require.Positive(t, f.results, "%s: runs and outcomes", q.queue)
		require.Positive(t, f.webhook, "%s: the webhook queue", q.queue)
		master := c.MasterOfSlot(t, slots[q.queue])
		t.Logf("faults: cluster keys: queue %s: slot %d on master %s: %d task hashes, %d other asynq keys, %d dead-letter keys, %d run and outcome keys, %d guard keys, %d webhook queue keys, %d others",
			q.queue, slots[q.queue], master.Addr, f.tasks, f.asynq, f.dead, f.results, f.guard, f.webhook, f.other)
	}
	// The guard's keys live only while in use (the rate limit's expires
	// milliseconds after the last call, the circuit's goes with a success),
	// so the scan may find none: their names must hash to the queue's slot
	// all the same, by CLUSTER KEYSLOT.
	for _, q := range qs {
		for _, key := range []string{"rate:cardimport:{" + q.queue + "}:wechatpay", "cardimport:{" + q.queue + "}:circuit", "cardimport:{" + q.queue + "}:slowdown"} {
			require.Equal(t, slots[q.queue], c.Slot(t, key), "the guard's key %s", key)
		}
	}
	slices.Sort(global)
	t.Logf("faults: cluster keys: %d keys on 3 masters, every one of a queue in its queue's slot; asynq's global keys: %s, and %d of the servers' own (asynq:servers:{ID}, asynq:workers:{ID}) spread by their IDs",
		total, strings.Join(global, ", "), perServer)
}

// queueOfKey is the queue whose hash tag key carries, "" for none.
func queueOfKey(key string, queues []string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return ""
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end <= 0 {
		return ""
	}
	tag := key[open+1 : open+1+end]
	if slices.Contains(queues, tag) {
		return tag
	}
	return ""
}

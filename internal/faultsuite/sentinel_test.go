package faultsuite_test

import (
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/redisconn/redisconntest"
	"github.com/cardimport/cardimport/internal/testkit"
)

// failoverRefused is how many members of a failover test WeChat refuses
// (dead letters that must survive the failover).
const failoverRefused = 30

// replicaLag is how long the replicas of the lagging variants stop
// replicating before the master dies: a stalled host, a congested link.
const replicaLag = 4 * time.Second

// TestSentinelFailover: a master, two replicas and three sentinels; two
// workers import 3,000 members (and 30 WeChat refuses) with transient
// faults while an `enqueue file` feeds them in, both through
// redis-sentinel://. Mid-run the master is SIGKILLed; Sentinel promotes a
// replica; workers and enqueue carry on. Redis replicates asynchronously,
// so what the master acknowledged in its last moments may be lost: each
// variant counts the acknowledged enqueues the new master does not hold,
// runs the same file again, which enqueues exactly those, and ends with
// every member imported once by WeChat's count, the dead letters and the
// run's counts whole.
//
// On one host the replicas are never more than a moment behind, so the
// plain variant loses next to nothing. In the lagging ones the master sits
// behind a proxy that stalls its replication links for 4 s before the
// kill, as a congested link would, and drops what it held when the master
// dies: with Redis's defaults the master acknowledges what no replica
// has, and the failover loses all of it; with min-replicas-to-write 1 and
// min-replicas-max-lag 1 the master refuses writes (NOREPLICAS, which the
// clients retry) once no replica has acknowledged anything for more than a
// second (Redis counts the lag in whole seconds, and replicas acknowledge
// once a second), which bounds the loss to about two seconds of writes.
// In the TLS variant every server and sentinel speaks TLS only, replication
// and the sentinels' links too, and the URL is rediss-sentinel://.
func TestSentinelFailover(t *testing.T) {
	for _, tt := range []struct {
		name string
		lag  time.Duration
		args []string
		tls  bool
	}{
		{name: "sentinel"},
		{name: "sentinel-lag", lag: replicaLag},
		{name: "sentinel-lag-minreplicas", lag: replicaLag, args: []string{"--min-replicas-to-write", "1", "--min-replicas-max-lag", "1"}},
		{name: "sentinel-tls", tls: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			needFaults(t)
			sentinelFailover(t, tt.name, tt.lag, tt.tls, tt.args...)
		})
	}
}

func sentinelFailover(t *testing.T, name string, lag time.Duration, withTLS bool, args ...string) {
	cfg := redisconntest.SentinelConfig{Replicas: 2, Sentinels: 3, Args: args, Proxy: lag > 0}
	if withTLS {
		cfg.TLS = redisconntest.NewTLS(t)
	}
	sg := redisconntest.StartSentinel(t, cfg)
	r := &testkit.Redis{Opt: sg.Opt, URL: sg.URL}
	q := newFailoverQueue(t, r, name, "imports-"+name, members, failoverRefused)
	if withTLS {
		// The workers and enqueue trust the test's CA as any Go
		// program does.
		q.vars["SSL_CERT_FILE"] = cfg.TLS.CA
	}
	rdb := connect(t, sg.Opt)
	insp := asynq.NewInspectorFromRedisClient(rdb)

	const workers = 2
	q.startWorkers(workers)
	// 250 rows a second: the enqueue outpaces the workers' 200 imports a
	// second a little, so both are mid-way when the master dies.
	f := q.feed(250)
	for deadline := time.Now().Add(recoveryLimit); f.rowsFed() < q.rows()*2/5; {
		require.True(t, time.Now().Before(deadline), "fed %d rows", f.rowsFed())
		time.Sleep(10 * time.Millisecond)
	}
	master := sg.Master(t)
	if lag > 0 {
		sg.Proxy.StallReplication()
		time.Sleep(lag)
	}
	imported := q.srv.Members()
	fed := f.rowsFed()
	master.Kill()
	killed := time.Now()
	if sg.Proxy != nil {
		sg.Proxy.Close()
	}
	promoted := sg.WaitPromoted(t, master, time.Minute)
	promotedAt := time.Now()
	resumed := q.waitResumed(killed, inFlight(workers))

	enqueued, duplicates := f.wait(t)
	require.Equal(t, q.rows(), enqueued+duplicates, "every row acknowledged, as enqueued or as a duplicate")
	idle := q.waitIdle(insp, false)
	lost := q.lost(rdb)
	again, dup := q.rerun()
	require.Equal(t, len(lost), again, "the second run enqueues exactly what the failover lost")
	require.Equal(t, q.rows()-len(lost), dup)
	done := q.waitIdle(insp, true)
	run := q.check(rdb)

	t.Logf("faults: %s: master %s SIGKILLed after %d of %d rows fed and %d members imported%s; %s promoted %s after the kill; imports resumed %s after the kill",
		name, master.Addr, fed, q.rows(), imported, lagNote(lag), promoted.Addr, seconds(promotedAt.Sub(killed)), seconds(resumed.Sub(killed)))
	t.Logf("faults: %s: enqueue file carried on (enqueued=%d duplicates=%d); the queue idle %s after the kill; acknowledged enqueues lost: %d; the same file again: enqueued=%d duplicates=%d; members imported twice: 0; all %d imported once and %d dead letters %s after the kill; the run: imported=%d dead=%d enqueued=%d",
		name, enqueued, duplicates, seconds(idle.Sub(killed)), len(lost), again, dup, len(q.importable), len(q.refused), seconds(done.Sub(killed)), run.Imported, run.Dead, run.Enqueued)
}

// lagNote says how far behind the replicas were.
func lagNote(lag time.Duration) string {
	if lag == 0 {
		return ""
	}
	return ", its replication links stalled for the " + seconds(lag) + " before"
}

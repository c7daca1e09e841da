package faultsuite_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/webhook"
	"github.com/cardimport/cardimport/results"
	"github.com/cardimport/cardimport/tasks"
)

// receiver is a registration system's webhook endpoint: it checks every
// signature, and can be down.
type receiver struct {
	secret string
	down   atomic.Bool

	mu        sync.Mutex
	outcomes  map[string]int // out_request_no → deliveries
	settled   map[string]results.Run
	badSig    int
	refused   int
	delivered int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if rc.down.Load() {
		rc.mu.Lock()
		rc.refused++
		rc.mu.Unlock()
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if err := webhook.Verify(rc.secret, r.Header.Get(webhook.SignatureHeader), body, time.Now(), webhook.Tolerance); err != nil {
		rc.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var ev webhook.Event
	if json.Unmarshal(body, &ev) != nil || ev.ID == "" || ev.ID != r.Header.Get(webhook.EventIDHeader) {
		rc.badSig++
		http.Error(w, "bad event", http.StatusBadRequest)
		return
	}
	rc.delivered++
	switch ev.Type {
	case webhook.TypeOutcome:
		var e results.Event
		if json.Unmarshal(ev.Data, &e) == nil {
			rc.outcomes[e.OutRequestNo]++
		}
	case webhook.TypeRunSettled:
		var run results.Run
		if json.Unmarshal(ev.Data, &run) == nil {
			rc.settled[run.ID] = run
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) counts() (outcomes, settled int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.outcomes), len(rc.settled)
}

// TestWebhooksWhileTheReceiverIsDown: the worker pushes every outcome and
// the run's settlement, signed, to a receiver that is down for the first
// part of the run. Imports go on at the same pace while it is down; once it
// is back, every event arrives at least once, and none with a bad
// signature.
func TestWebhooksWhileTheReceiverIsDown(t *testing.T) {
	s := newScenario(t, "webhooks", nil)
	rc := &receiver{secret: "whsec-faultsuite-0123456789", outcomes: map[string]int{}, settled: map[string]results.Run{}}
	rc.down.Store(true)
	ts := httptest.NewServer(rc)
	t.Cleanup(ts.Close)
	s.vars["WEBHOOK_URL"] = ts.URL + "/hooks/cardimport"
	s.vars["WEBHOOK_SECRET"] = rc.secret

	// Workers first: the relay's group starts at the streams' end.
	s.startWorker()
	s.startWorker()
	rdb := s.redis.Opt.MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
	rs, err := results.New(rdb, s.queue)
	require.NoError(t, err)
	for deadline := time.Now().Add(30 * time.Second); ; {
		groups, _ := rdb.XInfoGroups(t.Context(), results.StreamKey(s.queue)).Result()
		if len(groups) > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "no webhook relay started")
		time.Sleep(50 * time.Millisecond)
	}
	const run = "webhooks-run"
	client := asynq.NewClient(s.redis.Opt)
	defer client.Close()
	p, err := tasks.NewProducer(client, tasks.WithTaskOptions(tasks.WithQueue(s.queue)), tasks.WithRun(rs, run))
	require.NoError(t, err)
	start := time.Now()
	_, err = p.EnqueueMany(t.Context(), s.members)
	require.NoError(t, err)
	require.NoError(t, p.CloseRun(t.Context()))

	// Down for the first half of the imports.
	s.waitImported(members / 2)
	downFor := time.Since(start)
	rateDown := float64(s.srv.Members()) / downFor.Seconds()
	rc.down.Store(false)
	back := time.Now()
	atBack := s.srv.Members()
	done := s.waitDone()
	rateUp := float64(members-atBack) / done.Sub(back).Seconds()
	s.check()
	require.GreaterOrEqual(t, rateDown, 0.8*rateUp, "imports slowed while the receiver was down: %.0f/s down, %.0f/s up", rateDown, rateUp)

	// Every outcome and the settlement, at least once; retries come after
	// 10-20 s, then 20-40 s.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		o, st := rc.counts()
		if o == members && st == 1 {
			break
		}
		require.True(t, time.Now().Before(deadline), "delivered %d outcomes of %d and %d settlements", o, members, st)
		time.Sleep(100 * time.Millisecond)
	}
	allIn := time.Since(back)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	require.Zero(t, rc.badSig, "deliveries with a bad signature")
	settled := rc.settled[run]
	require.Equal(t, int64(members), settled.Imported)
	require.True(t, settled.Settled())
	s.report("receiver down %s (%d deliveries refused): imports %.0f/s while down, %.0f/s after; every outcome and the settlement delivered %s after it was back (%d deliveries, 0 bad signatures)",
		seconds(downFor), rc.refused, rateDown, rateUp, seconds(allIn), rc.delivered)
}

package worker

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/importer"
)

// flakyRedis answers PING only from its downFor+1st call on.
type flakyRedis struct {
	downFor int64
	calls   atomic.Int64
}

func (f *flakyRedis) Ping(context.Context) error {
	if f.calls.Add(1) <= f.downFor {
		return errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
	}
	return nil
}

func TestHoldReturnsAtOnceWhenRedisAnswers(t *testing.T) {
	t.Parallel()
	r := &flakyRedis{}
	start := time.Now()
	require.True(t, holdWhileRedisDown(t.Context(), r, nil))
	require.Equal(t, int64(1), r.calls.Load(), "one PING")
	require.Less(t, time.Since(start), holdPoll)
}

func TestHoldWaitsUntilRedisIsBack(t *testing.T) {
	t.Parallel()
	r := &flakyRedis{downFor: 3}
	start := time.Now()
	require.True(t, holdWhileRedisDown(t.Context(), r, nil))
	require.Equal(t, int64(4), r.calls.Load())
	require.GreaterOrEqual(t, time.Since(start), 3*holdPoll)
}

func TestHoldEndsBeforeTheTaskDeadline(t *testing.T) {
	t.Parallel()
	r := &flakyRedis{downFor: 1 << 30}
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	require.False(t, holdWhileRedisDown(ctx, r, nil))
	require.Less(t, time.Since(start), time.Second, "gives up a second before the deadline, for asynq's write")
}

func TestHoldLetsGoWhenTheWorkerStops(t *testing.T) {
	t.Parallel()
	r := &flakyRedis{downFor: 1 << 30}
	stop := make(chan struct{})
	time.AfterFunc(300*time.Millisecond, func() { close(stop) })
	start := time.Now()
	require.False(t, holdWhileRedisDown(t.Context(), r, stop))
	require.Less(t, time.Since(start), 2*time.Second)
}

func TestRedisInDoubt(t *testing.T) {
	t.Parallel()
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	for _, tc := range []struct {
		name  string
		ctx   context.Context
		err   error
		doubt bool
	}{
		{"wechat transient", t.Context(), errors.New("import: wechat pay 500 SYSTEM_ERROR"), true},
		{"result not written", t.Context(), &importer.DeferredError{Reason: importer.DeferRedis}, true},
		{"wrapped redis deferral", t.Context(), fmt.Errorf("x: %w", &importer.DeferredError{Reason: importer.DeferRedis}), true},
		{"rate limit wait", t.Context(), &importer.DeferredError{Reason: importer.DeferRateLimit}, false},
		{"circuit open", t.Context(), &importer.DeferredError{Reason: importer.DeferCircuitOpen}, false},
		{"lease expired", t.Context(), asynq.ErrLeaseExpired, false},
		{"attempt cancelled", cancelled, context.Canceled, false},
	} {
		require.Equal(t, tc.doubt, redisInDoubt(tc.ctx, tc.err), tc.name)
	}
}

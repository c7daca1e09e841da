package tasks_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/tasks"
)

// producerBundle is a Producer on a queue of the test's own.
type producerBundle struct {
	producer *tasks.Producer
	queue    string
	insp     *asynq.Inspector
}

func setupProducer(t *testing.T, opts ...tasks.ProducerOption) *producerBundle {
	t.Helper()
	r := testkit.NewRedis(t)
	q := r.Queue(t)
	client := asynq.NewClient(r.Opt)
	t.Cleanup(func() { _ = client.Close() })
	insp := asynq.NewInspector(r.Opt)
	t.Cleanup(func() { _ = insp.Close() })
	p, err := tasks.NewProducer(client, append([]tasks.ProducerOption{tasks.WithTaskOptions(tasks.WithQueue(q))}, opts...)...)
	require.NoError(t, err)
	return &producerBundle{producer: p, queue: q, insp: insp}
}

func (b *producerBundle) pending(t *testing.T) map[string]tasks.Payload {
	t.Helper()
	return testkit.PendingImports(t, b.insp, b.queue)
}

func TestProducerEnqueue(t *testing.T) {
	t.Parallel()
	b := setupProducer(t)
	ctx := testkit.Context(t)
	m := tasks.Payload{CardID: "pLcard0001", OpenID: "oUser0000000001", OutRequestNo: "order-1"}

	dup, err := b.producer.Enqueue(ctx, m, tasks.WithRetention(time.Hour))
	require.NoError(t, err)
	require.False(t, dup)
	info, err := b.insp.GetTaskInfo(b.queue, "order-1")
	require.NoError(t, err)
	require.Equal(t, time.Hour, info.Retention, "a per-call option overrides the producer's")

	// Another member under the same number is a duplicate; the first stays.
	dup, err = b.producer.Enqueue(ctx, tasks.Payload{CardID: "pLcard0001", OpenID: "oUser0000000002", OutRequestNo: "order-1"})
	require.NoError(t, err)
	require.True(t, dup)
	require.Equal(t, map[string]tasks.Payload{"order-1": m}, b.pending(t))

	_, err = b.producer.Enqueue(ctx, tasks.Payload{CardID: "pLcard0001", OutRequestNo: "order-2"})
	require.ErrorIs(t, err, tasks.ErrInvalidPayload)
	var fe *tasks.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "openid", fe.Field)
	require.Len(t, b.pending(t), 1)
}

func TestNewProducerRefusesBadOptions(t *testing.T) {
	t.Parallel()
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = client.Close() })
	tests := []struct {
		name string
		opts []tasks.ProducerOption
		want string
	}{
		{name: "no workers", opts: []tasks.ProducerOption{tasks.WithConcurrency(0)}, want: "concurrency: must be at least 1, got 0"},
		{name: "empty queue", opts: []tasks.ProducerOption{tasks.WithTaskOptions(tasks.WithQueue(""))}, want: "queue: must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tasks.NewProducer(client, tt.opts...)
			var oe *tasks.OptionError
			require.ErrorAs(t, err, &oe)
			require.EqualError(t, err, tt.want)
		})
	}
}

func TestProducerEnqueueMany(t *testing.T) {
	t.Parallel()
	b := setupProducer(t, tasks.WithConcurrency(4))
	ctx := testkit.Context(t)
	already := tasks.Payload{CardID: "pLcard0001", OpenID: "oUser0000000000", OutRequestNo: "order-0"}
	_, err := b.producer.Enqueue(ctx, already)
	require.NoError(t, err)

	var batch []tasks.Payload
	want := map[string]tasks.Payload{"order-0": already}
	for i := range 50 {
		m := tasks.Payload{CardID: "pLcard0001", OpenID: fmt.Sprintf("oUser%010d", i), OutRequestNo: fmt.Sprintf("order-%d", i)}
		batch = append(batch, m)
		if i > 0 {
			want[m.OutRequestNo] = m
		}
	}
	batch = append(batch,
		tasks.Payload{CardID: "pLcard0001", OpenID: "oUserRepeat", OutRequestNo: "order-7"}, // 50: repeats 7
		tasks.Payload{CardID: "pLcard0001", OpenID: "oUser", OutRequestNo: "order/51"},      // 51: invalid
	)
	results, err := b.producer.EnqueueMany(ctx, batch)
	require.NoError(t, err)
	require.Len(t, results, 52)
	for i, r := range results {
		require.Equal(t, i, r.Index)
		switch i {
		case 0, 50:
			require.True(t, r.Duplicate, "member %d", i)
			require.NoError(t, r.Err)
		case 51:
			require.EqualError(t, r.Err, "out_request_no: character '/' at position 6 is not allowed (letters, digits and | _ * - only)")
		default:
			require.False(t, r.Duplicate, "member %d", i)
			require.NoError(t, r.Err, "member %d", i)
		}
	}
	require.Equal(t, want, b.pending(t))
}

func TestProducerEnqueueManyRedisGone(t *testing.T) {
	// Only an embedded Redis can be stopped by a test.
	t.Parallel()
	m := miniredis.RunT(t)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: m.Addr(), DialTimeout: time.Second})
	t.Cleanup(func() { _ = client.Close() })
	p, err := tasks.NewProducer(client, tasks.WithConcurrency(1))
	require.NoError(t, err)
	m.Close()

	results, err := p.EnqueueMany(context.Background(), []tasks.Payload{
		{CardID: "pLcard0001", OpenID: "oUser0000000001", OutRequestNo: "order-1"},
		{CardID: "pLcard0001", OpenID: "oUser0000000002", OutRequestNo: "order-2"},
		{CardID: "pLcard0001", OutRequestNo: "order-3"},
	})
	require.ErrorContains(t, err, "member 0: enqueue task: ")
	require.ErrorContains(t, results[0].Err, "enqueue task: ")
	require.ErrorIs(t, results[1].Err, tasks.ErrNotAttempted)
	require.ErrorIs(t, results[2].Err, tasks.ErrInvalidPayload, "validation happens before any enqueue")
}

func TestProducerEnqueueManyBadOptions(t *testing.T) {
	t.Parallel()
	b := setupProducer(t, tasks.WithConcurrency(1))
	results, err := b.producer.EnqueueMany(testkit.Context(t), []tasks.Payload{
		{CardID: "pLcard0001", OutRequestNo: "order-1"},
		{CardID: "pLcard0001", OpenID: "oUser0000000002", OutRequestNo: "order-2"},
		{CardID: "pLcard0001", OpenID: "oUser0000000003", OutRequestNo: "order-3"},
	}, tasks.WithMaxRetry(-1))
	require.EqualError(t, err, "member 1: max-retry: must not be negative, got -1")
	require.ErrorIs(t, results[0].Err, tasks.ErrInvalidPayload)
	var oe *tasks.OptionError
	require.ErrorAs(t, results[1].Err, &oe)
	require.ErrorIs(t, results[2].Err, tasks.ErrNotAttempted)
	require.Empty(t, b.pending(t))
}

package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/cardimport/cardimport/results"
)

// TypeDeliver is the asynq task type of one webhook delivery.
const TypeDeliver = "webhook:deliver"

// Event types.
const (
	TypeOutcome    = "import.outcome"
	TypeRunSettled = "run.settled"
)

// Event is the JSON body POSTed to WEBHOOK_URL.
type Event struct {
	// ID is unique per event: a receiver that sees it again drops it.
	ID string `json:"id"`
	// Type is import.outcome (Data is a results.Event) or run.settled
	// (Data is a results.Run).
	Type      string          `json:"type"`
	Queue     string          `json:"queue"`
	CreatedAt time.Time       `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

// QueueFor is the asynq queue of the webhook deliveries of an import
// queue: QUEUE}:webhooks. asynq keys a queue as asynq:{NAME}:…, and Redis
// Cluster hashes only what stands between the first { and the next }: the
// brace in the name closes the tag after QUEUE, so the deliveries' keys
// (asynq:{QUEUE}:webhooks}:pending, …) share the import queue's hash slot,
// as every key of the project does, on one master with it.
func QueueFor(queue string) string { return queue + "}:webhooks" }

// group is the consumer group the relays of every worker share, and relay
// the one consumer name they all read as: its pending list is theirs
// together, and a relay that starts takes over what one that died had read
// and not acknowledged (a task ID per event keeps that from queueing an
// event twice).
const (
	group    = "cardimport-webhooks"
	consumer = "relay"
)

// Delivery retries: from 10 s doubling to an hour, 31 of them: about a day
// before the delivery is archived.
const (
	MaxRetry      = 31
	retention     = 24 * time.Hour
	retryMinDelay = 10 * time.Second
	retryMaxDelay = time.Hour
)

// Relay turns the queue's outcomes and run settlements into webhook tasks.
type Relay struct {
	rdb    redis.UniversalClient
	client *asynq.Client
	queue  string
	log    zerolog.Logger
	// Block is how long one read waits for events. Defaults to 2 s.
	Block time.Duration
}

// NewRelay returns the relay of queue's events.
func NewRelay(rdb redis.UniversalClient, queue string, log zerolog.Logger) *Relay {
	return &Relay{rdb: rdb, client: asynq.NewClientFromRedisClient(rdb), queue: queue, log: log, Block: 2 * time.Second}
}

// Run relays until ctx ends. A new group starts at the streams' end: the
// receiver hears of outcomes from the time webhooks were turned on. A
// failure to read or enqueue is logged and tried again, never returned:
// events wait in the stream meanwhile.
func (r *Relay) Run(ctx context.Context) {
	streams := []string{results.StreamKey(r.queue), results.RunEventsKey(r.queue)}
	for ctx.Err() == nil {
		err := r.relay(ctx, streams)
		if ctx.Err() != nil {
			return
		}
		r.log.Warn().Err(err).Msg("webhook relay: will retry")
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (r *Relay) relay(ctx context.Context, streams []string) error {
	for _, s := range streams {
		if err := r.rdb.XGroupCreateMkStream(ctx, s, group, "$").Err(); err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return fmt.Errorf("create group: %w", err)
		}
	}
	from := "0" // first what was read and not acknowledged
	for {
		res, err := r.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: group, Consumer: consumer, Streams: []string{streams[0], streams[1], from, from},
			Count: 200, Block: r.Block,
		}).Result()
		switch {
		case errors.Is(err, redis.Nil):
			from = ">"
			continue
		case err != nil:
			return err
		}
		n := 0
		for _, st := range res {
			for _, m := range st.Messages {
				n++
				if err := r.enqueue(ctx, st.Stream, m); err != nil {
					return err
				}
				if err := r.rdb.XAck(ctx, st.Stream, group, m.ID).Err(); err != nil {
					return fmt.Errorf("ack: %w", err)
				}
			}
		}
		if n == 0 {
			from = ">"
		}
	}
}

// enqueue queues the delivery of one stream entry.
func (r *Relay) enqueue(ctx context.Context, stream string, m redis.XMessage) error {
	if len(m.Values) == 0 {
		return nil // trimmed while pending
	}
	ev := Event{Queue: r.queue, CreatedAt: results.EntryTime(m.ID)}
	var data any
	if stream == results.RunEventsKey(r.queue) {
		ev.ID, ev.Type, data = "run-"+m.ID, TypeRunSettled, results.DecodeSettlement(m.Values)
	} else {
		ev.ID, ev.Type, data = "outcome-"+m.ID, TypeOutcome, results.DecodeEvent(m.ID, m.Values)
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	ev.Data = raw
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	_, err = r.client.EnqueueContext(ctx, asynq.NewTask(TypeDeliver, body),
		asynq.TaskID(ev.ID), asynq.Queue(QueueFor(r.queue)), asynq.MaxRetry(MaxRetry),
		asynq.Retention(retention), asynq.Timeout(time.Minute))
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) && !errors.Is(err, asynq.ErrDuplicateTask) {
		return fmt.Errorf("enqueue delivery: %w", err)
	}
	return nil
}

// Package deadletter keeps every import that failed for good — refused by
// WeChat, out of retries, rejected as a payload, or archived by asynq's own
// recovery — in a store of the project's own in Redis, so that operators
// can list them, see why, and replay them once the cause is fixed.
//
// asynq's archive is not enough for that: it trims itself to 9,999 tasks
// per queue and 90 days without a word, and its "run" keeps the spent retry
// budget. This store is never trimmed and has no TTL; a record goes away
// only when its import later succeeds, however it was put back.
//
// Layout, per queue (the {queue} hash tag keeps a queue's keys in one
// cluster slot, as asynq's own keys are):
//
//	cardimport:{QUEUE}:dead         sorted set: out_request_no by last failure (unix ms)
//	cardimport:{QUEUE}:dead:NUMBER  hash: the record of one out_request_no
//
// The record keeps the task payload, openid included, because a replay
// needs it; everything the store hands out for display carries the openid
// masked (Record.OpenIDMasked) and never the payload.
package deadletter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/cardimport/cardimport/internal/redisconn"
	"github.com/cardimport/cardimport/results"
	"github.com/cardimport/cardimport/tasks"
)

// Store is the dead-letter store of one queue. It is safe for concurrent
// use.
type Store struct {
	rdb     redis.UniversalClient
	own     bool // rdb was made by New and is closed by Close
	queue   string
	index   string // the sorted set
	rec     string // prefix of the record hashes
	insp    *asynq.Inspector
	cli     *asynq.Client
	results *results.Store

	// beforeDelete and afterEnqueue, nil outside tests, run inside a
	// replay's two windows (before it removes the archived task, after it
	// enqueued the new one), so tests can land an operator's click or a
	// worker's failure exactly there.
	beforeDelete, afterEnqueue func(outRequestNo string)
}

// New returns the store of queue in the Redis opt points at. It does not
// connect until first used.
func New(opt asynq.RedisConnOpt, queue string, opts ...results.Option) (*Store, error) {
	rdb, err := redisconn.Client(opt)
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	s, err := NewFromRedisClient(rdb, queue, opts...)
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	s.own = true
	return s, nil
}

// NewFromRedisClient returns the store of queue on an existing client,
// which the caller keeps and closes. opts configure the results store
// Settle writes to (its retention).
func NewFromRedisClient(rdb redis.UniversalClient, queue string, opts ...results.Option) (*Store, error) {
	if queue == "" {
		return nil, errors.New("dead letters: queue must not be empty")
	}
	rs, err := results.New(rdb, queue, opts...)
	if err != nil {
		return nil, err
	}
	prefix := "cardimport:{" + queue + "}:dead"
	return &Store{
		results: rs,
		rdb:     rdb,
		queue:   queue,
		index:   prefix,
		rec:     prefix + ":",
		insp:    asynq.NewInspectorFromRedisClient(rdb),
		cli:     asynq.NewClientFromRedisClient(rdb),
	}, nil
}

// Queue returns the name of the store's queue.
func (s *Store) Queue() string { return s.queue }

// Close releases the connection New made.
func (s *Store) Close() error {
	if s.own {
		return s.rdb.Close()
	}
	return nil
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// Count returns how many dead letters the queue has, replayed ones still in
// flight included: a record leaves the store only when its import succeeds.
func (s *Store) Count(ctx context.Context) (int64, error) {
	n, err := s.rdb.ZCard(ctx, s.index).Result()
	if err != nil {
		return 0, fmt.Errorf("dead letters: count: %w", err)
	}
	return n, nil
}

// ErrNotFound is returned by Get for an out_request_no without a record.
var ErrNotFound = errors.New("dead letters: no record")

// Get returns the record of an out_request_no, or ErrNotFound.
func (s *Store) Get(ctx context.Context, outRequestNo string) (Record, error) {
	fields, err := s.rdb.HGetAll(ctx, s.rec+outRequestNo).Result()
	if err != nil {
		return Record{}, fmt.Errorf("dead letters: get: %w", err)
	}
	if len(fields) == 0 {
		return Record{}, ErrNotFound
	}
	return decodeRecord(fields), nil
}

// Remove deletes the record of an out_request_no; removing one that does
// not exist is not an error. A replay that finds the import done calls it;
// the worker's successes remove their record with Settle.
func (s *Store) Remove(ctx context.Context, outRequestNo string) error {
	pipe := s.rdb.TxPipeline()
	s.remove(ctx, pipe, outRequestNo)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("dead letters: remove: %w", err)
	}
	return nil
}

// remove queues the removal of an out_request_no's record in pipe.
func (s *Store) remove(ctx context.Context, pipe redis.Pipeliner, outRequestNo string) {
	pipe.Del(ctx, s.rec+outRequestNo)
	pipe.ZRem(ctx, s.index, outRequestNo)
}

// Settle records how an import ended, in one script and so one round trip
// (results.Store.Settle): the result in the asynq task (the "result" field
// of the task's hash, where asynq's ResultWriter puts it), the removal of
// the record of its out_request_no when it succeeded (whichever way the
// task was put back), the outcome event and the counts of the member's run.
// It implements importer.ResultStore; the worker's handler settles every
// finished import through it.
func (s *Store) Settle(ctx context.Context, taskID string, p tasks.Payload, r tasks.Result) error {
	if taskID == "" {
		return errors.New("dead letters: result without a task ID")
	}
	if q, ok := asynq.GetQueueName(ctx); ok && q != s.queue {
		return fmt.Errorf("dead letters: result of a task of queue %q, the store is of %q", q, s.queue)
	}
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("dead letters: encode result: %w", err)
	}
	ev := results.Event{
		OutRequestNo: taskID, CardID: p.CardID, Run: p.Run, Outcome: string(r.Outcome), Code: r.Code,
		Reason: r.Reason, HTTPStatus: r.HTTPStatus, WeChatCode: r.WeChatCode, Message: MaskPayloadOpenIDOf(p, r.Message),
	}
	k := results.SettleKeys{Task: asynqTaskKey(s.queue, taskID), DeadRecord: s.rec + taskID, DeadIndex: s.index}
	if _, err := s.results.Settle(ctx, k, results.Settlement{Result: data, Event: ev}); err != nil {
		return fmt.Errorf("dead letters: settle: %w", err)
	}
	return nil
}

// Results returns the store of the queue's runs and outcomes that Settle
// writes to.
func (s *Store) Results() *results.Store { return s.results }

// recordScript upserts a record: the first failure time is kept, attempts
// add up across replays, everything else is the latest failure's. Every
// write counts one more in "failures", the record's generation, which
// tells a replay whether its task failed since (see markReplayed). With
// ARGV[1] == "reconcile" it writes only when there is no record or the
// record is a replay in flight, so that the sweep never counts a failure
// the worker has already recorded.
//
// KEYS[1] record hash, KEYS[2] index; ARGV: mode, out_request_no, first
// failure ms, last failure ms, attempts, then field/value pairs.
var recordScript = redis.NewScript(`
if ARGV[1] == "reconcile" and redis.call("EXISTS", KEYS[1]) == 1 and redis.call("HGET", KEYS[1], "state") ~= "replayed" then
	return 0
end
redis.call("HSETNX", KEYS[1], "first_failed_at", ARGV[3])
redis.call("HINCRBY", KEYS[1], "attempts", ARGV[5])
redis.call("HINCRBY", KEYS[1], "failures", 1)
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call("HSET", KEYS[1], "last_failed_at", ARGV[4], "state", "dead", unpack(fields))
redis.call("ZADD", KEYS[2], ARGV[4], ARGV[2])
return 1
`)

// Record stores a failure of r.OutRequestNo: a new record, or the latest
// failure of an existing one (its attempts are added, its first failure
// kept, its state back to dead).
func (s *Store) Record(ctx context.Context, r Record) error {
	_, err := s.record(ctx, "add", r)
	return err
}

// reconcile records r only when the store has no record of it or holds it
// as a replay in flight; it reports whether it wrote.
func (s *Store) reconcile(ctx context.Context, r Record) (bool, error) {
	return s.record(ctx, "reconcile", r)
}

func (s *Store) record(ctx context.Context, mode string, r Record) (bool, error) {
	if r.OutRequestNo == "" {
		return false, errors.New("dead letters: record: out_request_no is empty")
	}
	if r.LastFailedAt.IsZero() {
		r.LastFailedAt = time.Now()
	}
	if r.FirstFailedAt.IsZero() || r.FirstFailedAt.After(r.LastFailedAt) {
		r.FirstFailedAt = r.LastFailedAt
	}
	args := []any{mode, r.OutRequestNo, r.FirstFailedAt.UnixMilli(), r.LastFailedAt.UnixMilli(), max(r.Attempts, 1)}
	args = append(args,
		"out_request_no", r.OutRequestNo,
		"card_id", r.CardID,
		"openid_masked", r.OpenIDMasked,
		"payload", r.Payload,
		"reason", string(r.Reason),
		"http_status", r.HTTPStatus,
		"wechat_code", r.WeChatCode,
		"message", r.Message,
		"request_id", r.RequestID,
	)
	n, err := recordScript.Run(ctx, s.rdb, []string{s.rec + r.OutRequestNo, s.index}, args...).Int()
	if err != nil {
		return false, fmt.Errorf("dead letters: record: %w", err)
	}
	return n == 1, nil
}

// markReplayedScript notes a replay on a record that still exists: the
// replayed import may already have succeeded and removed it, and a note
// must not bring it back. A failure recorded since the replay read the
// record's failure count (ARGV[1]) is the replay failing already: the
// record stays dead. replayed_at is Redis's clock, the one every host
// shares.
var markReplayedScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 0 then
	return 0
end
if (redis.call("HGET", KEYS[1], "failures") or "0") == ARGV[1] then
	redis.call("HSET", KEYS[1], "state", "replayed")
end
local t = redis.call("TIME")
redis.call("HSET", KEYS[1], "replayed_at", tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)))
redis.call("HINCRBY", KEYS[1], "replays", 1)
return 1
`)

// markReplayed notes that a record's task was put back; the record stays
// until the import succeeds. failures is the record's failure count read
// before the task was enqueued. Comparing counts, not times, is what
// makes "failed again since" exact: the worker that records a failure and
// the host that replays have clocks of their own, and a skew of a second
// would mark a replay that already failed as in flight (and the sweep
// would then count its failure twice).
func (s *Store) markReplayed(ctx context.Context, outRequestNo, failures string) error {
	if err := markReplayedScript.Run(ctx, s.rdb, []string{s.rec + outRequestNo}, failures).Err(); err != nil {
		return fmt.Errorf("dead letters: mark replayed: %w", err)
	}
	return nil
}

func decodeRecord(f map[string]string) Record {
	return Record{
		OutRequestNo:  f["out_request_no"],
		CardID:        f["card_id"],
		OpenIDMasked:  f["openid_masked"],
		Payload:       []byte(f["payload"]),
		Reason:        Reason(f["reason"]),
		HTTPStatus:    atoi(f["http_status"]),
		WeChatCode:    f["wechat_code"],
		Message:       f["message"],
		RequestID:     f["request_id"],
		Attempts:      atoi(f["attempts"]),
		FirstFailedAt: millis(f["first_failed_at"]),
		LastFailedAt:  millis(f["last_failed_at"]),
		State:         State(f["state"]),
		Replays:       atoi(f["replays"]),
		ReplayedAt:    millis(f["replayed_at"]),
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func millis(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

package results

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Store reads and writes one queue's runs and outcomes. It is safe for
// concurrent use.
type Store struct {
	rdb       redis.UniversalClient
	queue     string
	keys      keys
	retention time.Duration
}

// Option changes a Store.
type Option func(*Store)

// WithRetention sets how long outcomes and runs are kept. Defaults to
// DefaultRetention.
func WithRetention(d time.Duration) Option { return func(s *Store) { s.retention = d } }

// New returns the store of queue on rdb, which stays the caller's to close.
func New(rdb redis.UniversalClient, queue string, opts ...Option) (*Store, error) {
	if queue == "" {
		return nil, errors.New("results: queue must not be empty")
	}
	s := &Store{rdb: rdb, queue: queue, keys: newKeys(queue), retention: DefaultRetention}
	for _, opt := range opts {
		opt(s)
	}
	if s.retention <= 0 {
		return nil, fmt.Errorf("results: retention must be positive, got %s", s.retention)
	}
	return s, nil
}

// Queue returns the store's queue.
func (s *Store) Queue() string { return s.queue }

// NewRunID returns a new run ID that sorts by time: the UTC second and four
// random hex digits, e.g. 20261204T183000Z-7f3a.
func NewRunID(now time.Time) string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// SettleKeys are the keys of asynq and of the dead-letter store that a
// settlement touches along with the store's own, so that all of it is one
// script: the task's hash (its result), and the member's dead-letter record
// and the dead-letter index.
type SettleKeys struct {
	Task, DeadRecord, DeadIndex string
}

// Settlement is one final outcome to record.
type Settlement struct {
	// Result is the JSON written as the asynq task's result.
	Result []byte
	// Event is the outcome; its ID and FinishedAt are set by Redis.
	Event Event
}

// Settle records a final outcome in one script: the task's result, the
// removal of the member's dead letter when it succeeded, the outcome event,
// and the run's counts (a member of the run that was dead and now succeeded
// moves from dead to its outcome; one dead in an earlier run counts in this
// one only). A task whose result already holds a success, or a
// dead outcome when this is dead again, is not counted twice: asynq may
// run a task once more after its result was written (a lost completion),
// and the registration system must see each member once per outcome. It
// returns the event's ID, or "" when nothing new was recorded.
func (s *Store) Settle(ctx context.Context, k SettleKeys, st Settlement) (string, error) {
	e := st.Event
	// Every key is passed, the run's too when there is none (its ARGV is
	// then empty): on Redis Cluster a script's keys must share a slot,
	// and an empty key name would not.
	args := append([]any{string(st.Result), e.Outcome, e.OutRequestNo, e.Run, s.retention.Milliseconds()}, e.fields()...)
	id, err := settleScript.Run(ctx, s.rdb,
		[]string{k.Task, k.DeadRecord, k.DeadIndex, s.keys.runPrefix + e.Run, s.keys.stream, s.keys.deadEvents, s.keys.superseded, s.keys.runEvents, s.keys.runDead + e.Run, s.keys.runReplays + e.Run},
		args...).Text()
	if err != nil {
		return "", fmt.Errorf("results: settle: %w", err)
	}
	return id, nil
}

// nowMillis is Redis's clock in milliseconds, the one every host shares.
const nowMillis = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// settledCheck sets a closed run's settled_at once nothing is left waiting,
// and appends the settlement to the queue's run events (KEYS stream,
// ARGV id), trimmed to the retention like the outcomes.
const settledCheck = `
local function settle_if_done(run, id, events, now, retention)
  local r = redis.call('HMGET', run, 'enqueued', 'imported', 'already_member', 'dead', 'closed', 'settled_at', 'duplicates', 'invalid', 'started_at')
  local done = tonumber(r[2] or '0') + tonumber(r[3] or '0') + tonumber(r[4] or '0')
  if r[5] == '1' and done >= tonumber(r[1] or '0') and not r[6] then
    redis.call('HSET', run, 'settled_at', now)
    redis.call('XADD', events, 'MINID', '~', tostring(now - retention), '*', 'run', id,
      'enqueued', r[1] or '0', 'duplicates', r[7] or '0', 'invalid', r[8] or '0',
      'imported', r[2] or '0', 'already_member', r[3] or '0', 'dead', r[4] or '0',
      'started_at', r[9] or '0', 'settled_at', tostring(now))
  end
end
`

// settleScript: KEYS task hash, dead-letter record, dead-letter index, run
// hash (” for none), stream, dead events, superseded, run events, the
// run's dead members, the run's replays in flight. ARGV result JSON,
// outcome, out_request_no, run id, retention ms, then the event's fields.
var settleScript = redis.NewScript(nowMillis + settledCheck + `
local success = ARGV[2] ~= 'dead'
local prev = redis.call('HGET', KEYS[1], 'result')
local prevSuccess = prev and (string.find(prev, '{"outcome":"imported"', 1, true) == 1 or string.find(prev, '{"outcome":"already_member"', 1, true) == 1)
local prevDead = prev and string.find(prev, '{"outcome":"dead"', 1, true) == 1
if success then
  redis.call('HSET', KEYS[1], 'result', ARGV[1])
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[3])
  if prevSuccess then return '' end
else
  if prevSuccess or prevDead then return '' end
  redis.call('HSET', KEYS[1], 'result', ARGV[1])
end
local retention = tonumber(ARGV[5])
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[5], 'MINID', '~', tostring(now - retention), '*', unpack(fields))
local wasDead = redis.call('HGET', KEYS[6], ARGV[3])
if wasDead then
  redis.call('ZADD', KEYS[7], now, wasDead)
end
if success then
  redis.call('HDEL', KEYS[6], ARGV[3])
else
  redis.call('HSET', KEYS[6], ARGV[3], id)
end
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now - retention)
if ARGV[4] ~= '' then
  -- A run's first outcome marks its index of dead members (KEYS[9])
  -- complete: every outcome of the run goes through it from then on.
  local c = redis.call('HMGET', KEYS[4], 'imported', 'already_member', 'dead', 'dead_index')
  local indexed = c[4] == '1'
  if not c[1] and not c[2] and not c[3] then
    redis.call('HSET', KEYS[4], 'dead_index', '1')
    indexed = true
  end
  -- Is this a replay of a member dead in this run (the task put back by
  -- asynq, or a new one by a replay, which marked it)? The run then
  -- counts it dead no more. A member dead in an earlier run, or enqueued
  -- again into this one once asynq dropped its task, is a new member of
  -- the run, as its enqueue was counted.
  local deadHere = false
  local replayed = redis.call('SREM', KEYS[10], ARGV[3]) == 1
  if indexed then
    if success then
      deadHere = redis.call('HDEL', KEYS[9], ARGV[3]) == 1 and (prevDead or replayed)
    else
      deadHere = redis.call('HSET', KEYS[9], ARGV[3], id) == 0 and replayed
    end
  elseif wasDead then
    -- A run settled in part before the index: the member's dead event
    -- says whose it was, while the stream holds it.
    local old = redis.call('XRANGE', KEYS[5], wasDead, wasDead)
    if old[1] then
      local f = old[1][2]
      for i = 1, #f - 1, 2 do
        if f[i] == 'run' then deadHere = f[i + 1] == ARGV[4] end
      end
    end
  end
  if deadHere then redis.call('HINCRBY', KEYS[4], 'dead', -1) end
  redis.call('HINCRBY', KEYS[4], ARGV[2], 1)
  redis.call('HSET', KEYS[4], 'updated_at', now)
  redis.call('PEXPIRE', KEYS[4], retention)
  redis.call('PEXPIRE', KEYS[9], retention)
  settle_if_done(KEYS[4], ARGV[4], KEYS[8], now, retention)
end
return id
`)

// Run is one run: its counts, and when it started and settled.
type Run struct {
	ID            string    `json:"id"`
	Enqueued      int64     `json:"enqueued"`
	Duplicates    int64     `json:"duplicates"`
	Invalid       int64     `json:"invalid"`
	Imported      int64     `json:"imported"`
	AlreadyMember int64     `json:"already_member"`
	Dead          int64     `json:"dead"`
	Waiting       int64     `json:"waiting"`
	StartedAt     time.Time `json:"started_at"`
	// Closed is set once its producer enqueued everything it meant to.
	Closed bool `json:"closed"`
	// SettledAt is when the run was closed and nothing was left waiting;
	// zero until then.
	SettledAt time.Time `json:"settled_at,omitzero"`
}

// Settled reports whether the run is closed and nothing is left waiting.
func (r Run) Settled() bool { return !r.SettledAt.IsZero() }

// ErrNoRun is returned for a run Redis does not hold (never started, or
// past its retention).
var ErrNoRun = errors.New("no such run")

// startScript: KEYS run hash, runs index; ARGV run id, retention ms. Opens
// the run (again): a run that gets more members is no longer settled.
var startScript = redis.NewScript(nowMillis + `
redis.call('HSETNX', KEYS[1], 'started_at', now)
redis.call('HDEL', KEYS[1], 'closed', 'settled_at')
redis.call('HSET', KEYS[1], 'updated_at', now)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
redis.call('ZADD', KEYS[2], 'NX', now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[2]))
return 1
`)

// StartRun opens run id (a new one, or one that gets more members).
func (s *Store) StartRun(ctx context.Context, id string) error {
	if err := ValidateRunID(id); err != nil {
		return err
	}
	if err := startScript.Run(ctx, s.rdb, []string{s.keys.runPrefix + id, s.keys.runs}, id, s.retention.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("results: start run: %w", err)
	}
	return nil
}

// CountEnqueued adds what a producer did to run id's counts.
func (s *Store) CountEnqueued(ctx context.Context, id string, enqueued, duplicates, invalid int64) error {
	if enqueued == 0 && duplicates == 0 && invalid == 0 {
		return nil
	}
	pipe := s.rdb.TxPipeline()
	key := s.keys.runPrefix + id
	pipe.HIncrBy(ctx, key, "enqueued", enqueued)
	pipe.HIncrBy(ctx, key, "duplicates", duplicates)
	pipe.HIncrBy(ctx, key, "invalid", invalid)
	pipe.PExpire(ctx, key, s.retention)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("results: count enqueued: %w", err)
	}
	return nil
}

// closeScript: KEYS run hash, run events; ARGV run id, retention ms.
// Marks the run closed and settles it if nothing is left waiting.
var closeScript = redis.NewScript(nowMillis + settledCheck + `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'closed', '1')
settle_if_done(KEYS[1], ARGV[1], KEYS[2], now, tonumber(ARGV[2]))
return 1
`)

// CloseRun says its producer enqueued everything: the run settles once
// nothing is left waiting.
func (s *Store) CloseRun(ctx context.Context, id string) error {
	if err := closeScript.Run(ctx, s.rdb, []string{s.keys.runPrefix + id, s.keys.runEvents}, id, s.retention.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("results: close run: %w", err)
	}
	return nil
}

// Run reads run id, or returns ErrNoRun.
func (s *Store) Run(ctx context.Context, id string) (Run, error) {
	if err := ValidateRunID(id); err != nil {
		return Run{}, err
	}
	h, err := s.rdb.HGetAll(ctx, s.keys.runPrefix+id).Result()
	if err != nil {
		return Run{}, fmt.Errorf("results: read run: %w", err)
	}
	if len(h) == 0 {
		return Run{}, fmt.Errorf("%w: %s", ErrNoRun, id)
	}
	return decodeRun(id, h), nil
}

func decodeRun(id string, h map[string]string) Run {
	n := func(k string) int64 { v, _ := strconv.ParseInt(h[k], 10, 64); return v }
	t := func(k string) time.Time {
		if h[k] == "" {
			return time.Time{}
		}
		return time.UnixMilli(n(k)).UTC()
	}
	r := Run{ID: id, Enqueued: n("enqueued"), Duplicates: n("duplicates"), Invalid: n("invalid"),
		Imported: n("imported"), AlreadyMember: n("already_member"), Dead: n("dead"),
		StartedAt: t("started_at"), Closed: h["closed"] == "1", SettledAt: t("settled_at")}
	// Counts land from several processes; a completion may be counted
	// before the enqueue that produced it.
	r.Waiting = max(r.Enqueued-r.Imported-r.AlreadyMember-r.Dead, 0)
	return r
}

// Runs returns up to limit runs, newest first.
func (s *Store) Runs(ctx context.Context, limit int64) ([]Run, error) {
	ids, err := s.rdb.ZRevRange(ctx, s.keys.runs, 0, limit-1).Result()
	if err != nil {
		return nil, fmt.Errorf("results: list runs: %w", err)
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, s.keys.runPrefix+id)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("results: list runs: %w", err)
	}
	runs := make([]Run, 0, len(ids))
	for i, id := range ids {
		if h := cmds[i].Val(); len(h) > 0 {
			runs = append(runs, decodeRun(id, h))
		}
	}
	return runs, nil
}

// maxRunsScanned bounds the runs InProgress reads: the runs index keeps a
// retention's worth, which a nightly import makes a few dozen.
const maxRunsScanned = 10000

// InProgress counts the runs not yet settled, among the newest
// maxRunsScanned.
func (s *Store) InProgress(ctx context.Context) (int64, error) {
	ids, err := s.rdb.ZRevRange(ctx, s.keys.runs, 0, maxRunsScanned-1).Result()
	if err != nil {
		return 0, fmt.Errorf("results: runs in progress: %w", err)
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HMGet(ctx, s.keys.runPrefix+id, "started_at", "settled_at")
	}
	if len(ids) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return 0, fmt.Errorf("results: runs in progress: %w", err)
		}
	}
	var n int64
	for _, c := range cmds {
		v := c.Val()
		if len(v) == 2 && v[0] != nil && v[1] == nil {
			n++
		}
	}
	return n, nil
}

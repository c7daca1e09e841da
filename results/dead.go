package results

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// deadScan is how many of a run's dead members one read takes.
const deadScan = 1000

// DeadOf calls fn with the outcome of each member of run whose latest
// outcome is dead, oldest first, and reports whether the run has a complete
// index of its dead members. It reads that index, which the settle script
// keeps from a run's first outcome on, not the stream: it costs what the
// run's dead members do, however many outcomes the queue holds. A run whose
// first outcome was settled before there was an index gives false and fn is
// not called; Export over the run's span then finds its dead members. It
// stops at the first error fn returns.
func (s *Store) DeadOf(ctx context.Context, run string, fn func(Event) error) (bool, error) {
	if err := ValidateRunID(run); err != nil {
		return false, err
	}
	flag, err := s.rdb.HGet(ctx, s.keys.runPrefix+run, "dead_index").Result()
	if errors.Is(err, redis.Nil) || (err == nil && flag != "1") {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("results: read run: %w", err)
	}
	members, err := s.deadMembers(ctx, s.keys.runDead+run)
	if err != nil {
		return true, err
	}
	for batch := range slices.Chunk(members, deadScan) {
		events, err := s.events(ctx, batch)
		if err != nil {
			return true, err
		}
		for _, e := range events {
			if err := fn(e); err != nil {
				return true, err
			}
		}
	}
	return true, nil
}

// deadMember is a member in a run's index of dead members: its
// out_request_no and the ID of its dead event.
type deadMember struct{ no, id string }

// deadMembers reads the index of dead members at key and keeps those whose
// dead event is still the member's latest outcome (the queue's dead events
// name it): a member that was dead in this run and is dead again in a
// later one belongs to the later run. They come oldest first.
func (s *Store) deadMembers(ctx context.Context, key string) ([]deadMember, error) {
	var members []deadMember
	var cursor uint64
	for {
		kv, next, err := s.rdb.HScan(ctx, key, cursor, "*", deadScan).Result()
		if err != nil {
			return nil, fmt.Errorf("results: read dead members: %w", err)
		}
		if len(kv) > 0 {
			nos := make([]string, 0, len(kv)/2)
			for i := 0; i+1 < len(kv); i += 2 {
				nos = append(nos, kv[i])
			}
			latest, err := s.rdb.HMGet(ctx, s.keys.deadEvents, nos...).Result()
			if err != nil {
				return nil, fmt.Errorf("results: read dead events: %w", err)
			}
			for i, no := range nos {
				if id := kv[2*i+1]; latest[i] == id {
					members = append(members, deadMember{no: no, id: id})
				}
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	// HSCAN may return a field twice, and a member dead again while it
	// scans with two events: each member once, at its latest.
	slices.SortFunc(members, func(a, b deadMember) int {
		return cmp.Or(cmp.Compare(a.no, b.no), -compareIDs(a.id, b.id))
	})
	members = slices.CompactFunc(members, func(a, b deadMember) bool { return a.no == b.no })
	slices.SortFunc(members, func(a, b deadMember) int { return compareIDs(a.id, b.id) })
	return members, nil
}

// events reads the events of members, in their order, in one round trip.
// An event trimmed past its retention is left out.
func (s *Store) events(ctx context.Context, members []deadMember) ([]Event, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.XMessageSliceCmd, len(members))
	for i, m := range members {
		cmds[i] = pipe.XRangeN(ctx, s.keys.stream, m.id, m.id, 1)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("results: read dead outcomes: %w", err)
	}
	events := make([]Event, 0, len(members))
	for _, c := range cmds {
		for _, m := range c.Val() {
			events = append(events, eventFrom(m.ID, m.Values))
		}
	}
	return events, nil
}

// compareIDs orders two stream entry IDs (MS-SEQ) as the stream does.
func compareIDs(a, b string) int {
	aMS, aSeq, _ := strings.Cut(a, "-")
	bMS, bSeq, _ := strings.Cut(b, "-")
	return cmp.Or(cmp.Compare(parseUint(aMS), parseUint(bMS)), cmp.Compare(parseUint(aSeq), parseUint(bSeq)))
}

func parseUint(s string) uint64 {
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}

// PruneEvery is how often, across every worker of a queue, PruneDead does
// its work: the members it drops are a month old, an hour changes nothing.
const PruneEvery = time.Hour

// pruneScript: KEYS the queue's dead events; ARGV pairs of out_request_no
// and the event ID read. Each is dropped only if it still names that event:
// a member dead again since keeps its new one.
var pruneScript = redis.NewScript(`
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
`)

// PruneDead drops from the queue's dead events (out_request_no → its dead
// event, which a later success marks superseded) the members whose dead
// event is past the retention: the stream has trimmed it, so there is
// nothing left to mark, and the member's dead letter still tells its story.
// It does so at most once per PruneEvery for the queue, whichever process
// asks first, and returns how many it dropped.
func (s *Store) PruneDead(ctx context.Context) (int, error) {
	first, err := s.rdb.SetNX(ctx, s.keys.pruned, "1", PruneEvery).Result()
	if err != nil || !first {
		return 0, wrapPrune(err)
	}
	// Redis's clock, the one the event IDs were made with.
	now, err := s.rdb.Time(ctx).Result()
	if err != nil {
		return 0, wrapPrune(err)
	}
	cutoff := now.Add(-s.retention)
	dropped := 0
	var cursor uint64
	for {
		kv, next, err := s.rdb.HScan(ctx, s.keys.deadEvents, cursor, "*", deadScan).Result()
		if err != nil {
			return dropped, wrapPrune(err)
		}
		var old []any
		for i := 0; i+1 < len(kv); i += 2 {
			if idTime(kv[i+1]).Before(cutoff) {
				old = append(old, kv[i], kv[i+1])
			}
		}
		if len(old) > 0 {
			n, err := pruneScript.Run(ctx, s.rdb, []string{s.keys.deadEvents}, old...).Int()
			dropped += n
			if err != nil {
				return dropped, wrapPrune(err)
			}
		}
		if cursor = next; cursor == 0 {
			return dropped, nil
		}
	}
}

func wrapPrune(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("results: prune dead events: %w", err)
}

// MarkReplay notes that member no of run is being replayed (enqueue dead
// replay, the Runs page's Replay): a new task, whose outcome then replaces
// the member's dead one in the run's counts instead of adding to them as
// the outcome of a new enqueue would. Call it before enqueueing the replay
// and UnmarkReplay if the enqueue fails. A run of "" has nothing to mark.
func (s *Store) MarkReplay(ctx context.Context, run, no string) error {
	if run == "" {
		return nil
	}
	key := s.keys.runReplays + run
	pipe := s.rdb.TxPipeline()
	pipe.SAdd(ctx, key, no)
	pipe.PExpire(ctx, key, s.retention)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("results: mark replay: %w", err)
	}
	return nil
}

// UnmarkReplay takes back MarkReplay, for a replay that was not enqueued.
func (s *Store) UnmarkReplay(ctx context.Context, run, no string) error {
	if run == "" {
		return nil
	}
	if err := s.rdb.SRem(ctx, s.keys.runReplays+run, no).Err(); err != nil {
		return fmt.Errorf("results: unmark replay: %w", err)
	}
	return nil
}

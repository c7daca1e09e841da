package results

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// pageSize is how many stream entries one read takes.
const pageSize = 1000

// pageScan bounds the entries one Page call reads looking for a run's
// outcomes among other runs': a few milliseconds of Redis time.
const pageScan = 20000

// Filter narrows what Export and Page return.
type Filter struct {
	// Run keeps only the run's outcomes. Defaults to every run.
	Run string
	// Since keeps only outcomes from this time on. Defaults to the oldest
	// kept.
	Since time.Time
}

// superseded returns the IDs of events a later outcome of the same member
// replaced (a dead import replayed). They are few: one per replay.
func (s *Store) superseded(ctx context.Context) (map[string]bool, error) {
	ids, err := s.rdb.ZRange(ctx, s.keys.superseded, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("results: read superseded: %w", err)
	}
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m, nil
}

// Export calls fn with the latest outcome of every out_request_no that
// f selects, oldest first, reading the stream a page at a time: memory stays
// flat however many outcomes there are. An outcome a later one replaced (a
// dead import replayed) is left out. It stops at the first error fn returns.
func (s *Store) Export(ctx context.Context, f Filter, fn func(Event) error) error {
	skip, err := s.superseded(ctx)
	if err != nil {
		return err
	}
	start := "-"
	if !f.Since.IsZero() {
		start = strconv.FormatInt(f.Since.UnixMilli(), 10)
	}
	for {
		msgs, err := s.rdb.XRangeN(ctx, s.keys.stream, start, "+", pageSize).Result()
		if err != nil {
			return fmt.Errorf("results: read outcomes: %w", err)
		}
		for _, m := range msgs {
			if skip[m.ID] {
				continue
			}
			e := eventFrom(m.ID, m.Values)
			if f.Run != "" && e.Run != f.Run {
				continue
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(msgs) < pageSize {
			return nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

// Page returns up to limit outcomes that f selects after the cursor (""
// for the start), latest outcome of each member only, and the cursor to
// pass next. It scans at most pageScan entries per call (or ten pages'
// worth, if more), so a run's page may hold fewer than limit outcomes while
// more follow: the cursor is "" only when the stream has nothing more.
func (s *Store) Page(ctx context.Context, f Filter, after string, limit int) ([]Event, string, error) {
	if after != "" && !validID(after) {
		return nil, "", ErrBadCursor
	}
	skip, err := s.superseded(ctx)
	if err != nil {
		return nil, "", err
	}
	start := "-"
	switch {
	case after != "":
		start = "(" + after
	case !f.Since.IsZero():
		start = strconv.FormatInt(f.Since.UnixMilli(), 10)
	}
	var out []Event
	batch := max(limit, pageSize)
	for scanned := 0; scanned < max(10*limit, pageScan); {
		msgs, err := s.rdb.XRangeN(ctx, s.keys.stream, start, "+", int64(batch)).Result()
		if err != nil {
			return nil, "", fmt.Errorf("results: read outcomes: %w", err)
		}
		for _, m := range msgs {
			start = "(" + m.ID
			if e := eventFrom(m.ID, m.Values); !skip[m.ID] && (f.Run == "" || e.Run == f.Run) {
				out = append(out, e)
				if len(out) == limit {
					return out, m.ID, nil
				}
			}
		}
		if len(msgs) < batch {
			return out, "", nil
		}
		scanned += len(msgs)
	}
	return out, strings.TrimPrefix(start, "("), nil
}

// ErrBadCursor is Page's error for an after= that no page gave.
var ErrBadCursor = errors.New("results: after: not a cursor this API gave")

// validID reports whether s looks like a stream entry ID (ms-seq).
func validID(s string) bool {
	ms, seq, ok := strings.Cut(s, "-")
	if !ok {
		return false
	}
	_, err1 := strconv.ParseUint(ms, 10, 64)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return err1 == nil && err2 == nil
}

// Follower reads a queue's outcome stream through a Redis consumer group.
type Follower struct {
	rdb      redis.UniversalClient
	stream   string
	group    string
	consumer string
	// Block is how long one read waits for new events, and so how long a
	// cancelled Follow may take to return (a blocked read is not cut
	// short). Defaults to 1 s.
	Block time.Duration
}

// NewFollower returns a follower of queue's outcomes as consumer of group.
// Followers of one group share the events; each group gets every event.
func NewFollower(rdb redis.UniversalClient, queue, group, consumer string) (*Follower, error) {
	switch {
	case queue == "":
		return nil, errors.New("results: queue must not be empty")
	case group == "":
		return nil, errors.New("results: group: must not be empty")
	case consumer == "":
		return nil, errors.New("results: consumer: must not be empty")
	}
	return &Follower{rdb: rdb, stream: StreamKey(queue), group: group, consumer: consumer, Block: time.Second}, nil
}

// Follow calls fn with each event of the group that reaches this consumer,
// and acknowledges it only after fn returned nil: delivery is at least
// once. It first delivers again what this consumer received and did not
// acknowledge (a follower killed mid-way and started with the same names),
// then new events, until ctx ends (it returns nil then) or fn returns an
// error (returned; that event stays unacknowledged). A new group starts at
// the oldest event kept.
func (f *Follower) Follow(ctx context.Context, fn func(context.Context, Event) error) error {
	err := f.rdb.XGroupCreateMkStream(ctx, f.stream, f.group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("results: create group: %w", err)
	}
	pendingFirst := true
	for {
		from := ">"
		if pendingFirst {
			from = "0"
		}
		streams, err := f.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: f.group, Consumer: f.consumer, Streams: []string{f.stream, from},
			Count: 100, Block: f.Block,
		}).Result()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			return fmt.Errorf("results: read group: %w", err)
		}
		n := 0
		for _, st := range streams {
			for _, m := range st.Messages {
				n++
				if len(m.Values) == 0 {
					// Trimmed past its retention while unacknowledged.
					if err := f.rdb.XAck(ctx, f.stream, f.group, m.ID).Err(); err != nil {
						return fmt.Errorf("results: ack: %w", err)
					}
					continue
				}
				if err := fn(ctx, eventFrom(m.ID, m.Values)); err != nil {
					return err
				}
				// Acknowledged even if ctx ended meanwhile: the event
				// was handled, and would otherwise come again.
				if err := f.rdb.XAck(context.WithoutCancel(ctx), f.stream, f.group, m.ID).Err(); err != nil {
					return fmt.Errorf("results: ack: %w", err)
				}
			}
		}
		if pendingFirst && n == 0 {
			pendingFirst = false
		}
	}
}

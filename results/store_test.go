package results_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/results"
)

type bundle struct {
	rdb   redis.UniversalClient
	store *results.Store
	queue string
}

func setup(t *testing.T) *bundle {
	t.Helper()
	r := testkit.NewRedis(t)
	rdb := r.Opt.MakeRedisClient().(redis.UniversalClient)
	t.Cleanup(func() { _ = rdb.Close() })
	q := r.Queue(t)
	s, err := results.New(rdb, q)
	require.NoError(t, err)
	return &bundle{rdb: rdb, store: s, queue: q}
}

var seq atomic.Int64

// settle records an outcome of member no in run, as the worker's handler
// does through the dead-letter store.
func (b *bundle) settle(t *testing.T, no, run, outcome, code string) string {
	t.Helper()
	res := fmt.Sprintf(`{"outcome":%q,"code":%q}`, outcome, code)
	k := results.SettleKeys{Task: "asynq:{" + b.queue + "}:t:" + no, DeadRecord: "cardimport:{" + b.queue + "}:dead:" + no, DeadIndex: "cardimport:{" + b.queue + "}:dead"}
	id, err := b.store.Settle(context.Background(), k, results.Settlement{Result: []byte(res), Event: results.Event{
		OutRequestNo: no, CardID: "pbLatjvWOibDc5-TBnbUk1pD12o0", Run: run, Outcome: outcome, Code: code}})
	require.NoError(t, err)
	return id
}

func (b *bundle) run(t *testing.T, id string) results.Run {
	t.Helper()
	r, err := b.store.Run(context.Background(), id)
	require.NoError(t, err)
	return r
}

func (b *bundle) export(t *testing.T, f results.Filter) []results.Event {
	t.Helper()
	var out []results.Event
	require.NoError(t, b.store.Export(context.Background(), f, func(e results.Event) error {
		out = append(out, e)
		return nil
	}))
	return out
}

// TestRunCountsAndSettles: a run counts what went in and how each member
// ended, and settles once it is closed and nothing is left waiting.
func TestRunCountsAndSettles(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	run := results.NewRunID(time.Now())
	require.Regexp(t, `^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}$`, run)
	require.NoError(t, b.store.StartRun(ctx, run))
	require.NoError(t, b.store.CountEnqueued(ctx, run, 3, 1, 2))
	b.settle(t, "no-1", run, results.OutcomeImported, "111111111111")
	b.settle(t, "no-2", run, results.OutcomeAlreadyMember, "222222222222")
	r := b.run(t, run)
	require.Equal(t, int64(1), r.Waiting)
	require.False(t, r.Settled(), "not closed yet")
	require.NoError(t, b.store.CloseRun(ctx, run))
	require.False(t, b.run(t, run).Settled(), "one member still waiting")
	b.settle(t, "no-3", run, results.OutcomeDead, "")
	r = b.run(t, run)
	require.True(t, r.Settled())
	settled, err := b.rdb.XRange(ctx, results.RunEventsKey(b.queue), "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, settled, 1, "one settlement event")
	require.Equal(t, run, settled[0].Values["run"])
	require.Equal(t, "1", settled[0].Values["dead"])
	require.Equal(t, "3", settled[0].Values["enqueued"])
	require.Equal(t, results.Run{ID: run, Enqueued: 3, Duplicates: 1, Invalid: 2, Imported: 1, AlreadyMember: 1, Dead: 1,
		StartedAt: r.StartedAt, Closed: true, SettledAt: r.SettledAt}, r)

	// The dead member is replayed and imported: dead → imported, and the
	// export shows only its latest outcome.
	b.settle(t, "no-3", run, results.OutcomeImported, "333333333333")
	r = b.run(t, run)
	require.Equal(t, int64(2), r.Imported)
	require.Zero(t, r.Dead)
	got := b.export(t, results.Filter{Run: run})
	require.Len(t, got, 3)
	require.Equal(t, "no-3", got[2].OutRequestNo)
	require.Equal(t, results.OutcomeImported, got[2].Outcome)
	require.Equal(t, "333333333333", got[2].Code)

	runs, err := b.store.Runs(ctx, 10)
	require.NoError(t, err)
	require.Len(t, runs, 1)
	require.Equal(t, run, runs[0].ID)
}

// TestSettleCountsOnce: asynq may run a task again after its result was
// written; a second success, or a second death, is neither counted nor
// told again.
func TestSettleCountsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	run := "once"
	require.NoError(t, b.store.StartRun(context.Background(), run))
	require.NotEmpty(t, b.settle(t, "a", run, results.OutcomeImported, "1"))
	require.Empty(t, b.settle(t, "a", run, results.OutcomeImported, "1"))
	require.NotEmpty(t, b.settle(t, "b", run, results.OutcomeDead, ""))
	require.Empty(t, b.settle(t, "b", run, results.OutcomeDead, ""))
	r := b.run(t, run)
	require.Equal(t, int64(1), r.Imported)
	require.Equal(t, int64(1), r.Dead)
	require.Len(t, b.export(t, results.Filter{}), 2)
}

// TestPage pages through outcomes with a cursor, one run at a time.
func TestPage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := range 25 {
		run := "even"
		if i%2 == 1 {
			run = "odd"
		}
		b.settle(t, fmt.Sprintf("p-%02d", i), run, results.OutcomeImported, fmt.Sprint(i))
	}
	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		page, next, err := b.store.Page(context.Background(), results.Filter{Run: "odd"}, cursor, 5)
		require.NoError(t, err)
		for _, e := range page {
			require.Equal(t, "odd", e.Run)
			seen = append(seen, e.OutRequestNo)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	require.Len(t, seen, 12)
	require.Equal(t, "p-01", seen[0])
	require.Equal(t, "p-23", seen[11])
	_, _, err := b.store.Page(context.Background(), results.Filter{}, "not-a-cursor", 5)
	require.ErrorContains(t, err, "after: not a cursor")
}

// TestFollowIsAtLeastOnce: a follower that stops before acknowledging
// gets the event again when it starts with the same names; two followers of
// one group share the events.
func TestFollowIsAtLeastOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := range 10 {
		b.settle(t, fmt.Sprintf("f-%02d", i), "r", results.OutcomeImported, fmt.Sprint(i))
	}
	follow := func(consumer string, stopAt int) []string {
		f, err := results.NewFollower(b.rdb, b.queue, "registration", consumer)
		require.NoError(t, err)
		f.Block = 100 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
		defer cancel()
		var got []string
		stop := fmt.Errorf("stop")
		err = f.Follow(ctx, func(_ context.Context, e results.Event) error {
			if len(got) == stopAt {
				return stop // killed before writing this one
			}
			got = append(got, e.OutRequestNo)
			return nil
		})
		if stopAt >= 0 {
			require.ErrorIs(t, err, stop)
		}
		return got
	}
	first := follow("c1", 4)
	require.Equal(t, []string{"f-00", "f-01", "f-02", "f-03"}, first)
	again := follow("c1", -1)
	require.Equal(t, "f-04", again[0], "the event not acknowledged comes again")
	require.Len(t, again, 6)
	// Another consumer of the group gets nothing more: all were acked.
	require.Empty(t, follow("c2", -1))
}

func TestRunIDs(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"nightly-2026-12-04", "20261204T183000Z-7f3a", "a"} {
		require.NoError(t, results.ValidateRunID(id), id)
	}
	for _, id := range []string{"", "-x", "has space", "semi;colon", "\x1b[31m", string(make([]byte, 65))} {
		require.ErrorIs(t, results.ValidateRunID(id), results.ErrInvalidRunID, "%q", id)
	}
}

// TestDeadOf: a run's dead members come from the run's own index, oldest
// first, without those imported since (a replay) or dead again in a later
// run. A run whose first outcome came before the index has none complete:
// DeadOf says so and the stream is the way.
func TestDeadOf(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	runA, runB := "night-a", "night-b"
	dead := func(run string, wantIndexed bool) []string {
		t.Helper()
		var nos []string
		indexed, err := b.store.DeadOf(ctx, run, func(e results.Event) error {
			require.Equal(t, results.OutcomeDead, e.Outcome)
			require.Equal(t, run, e.Run)
			nos = append(nos, e.OutRequestNo)
			return nil
		})
		require.NoError(t, err)
		require.Equal(t, wantIndexed, indexed)
		return nos
	}
	for i := range 5 {
		b.settle(t, fmt.Sprintf("no-%d", i), runA, results.OutcomeDead, "")
	}
	b.settle(t, "no-imported", runA, results.OutcomeImported, "111111111111")
	require.Equal(t, []string{"no-0", "no-1", "no-2", "no-3", "no-4"}, dead(runA, true))
	require.Nil(t, dead(runB, false), "no outcome yet")

	// no-1 replayed and imported; no-3's task gone (past asynq's
	// retention) and the member enqueued and dead again in run B.
	b.settle(t, "no-1", runA, results.OutcomeImported, "222222222222")
	require.NoError(t, b.rdb.Del(ctx, "asynq:{"+b.queue+"}:t:no-3").Err())
	b.settle(t, "no-3", runB, results.OutcomeDead, "")
	require.Equal(t, []string{"no-0", "no-2", "no-4"}, dead(runA, true))
	require.Equal(t, []string{"no-3"}, dead(runB, true))

	// What the stream says, read whole, agrees.
	var fromStream []string
	for _, e := range b.export(t, results.Filter{Run: runA}) {
		if e.Outcome == results.OutcomeDead {
			fromStream = append(fromStream, e.OutRequestNo)
		}
	}
	require.Equal(t, dead(runA, true), fromStream)

	// A run whose first outcome a version before the index settled (no
	// mark on the run, no index): later outcomes do not make it complete.
	runC := "night-c"
	b.settle(t, "no-c1", runC, results.OutcomeDead, "")
	require.NoError(t, b.rdb.HDel(ctx, "cardimport:{"+b.queue+"}:run:"+runC, "dead_index").Err())
	require.NoError(t, b.rdb.Del(ctx, "cardimport:{"+b.queue+"}:run-dead:"+runC).Err())
	b.settle(t, "no-c2", runC, results.OutcomeDead, "")
	require.Nil(t, dead(runC, false))

	_, err := b.store.DeadOf(ctx, "bad id", func(results.Event) error { return nil })
	require.ErrorIs(t, err, results.ErrInvalidRunID)
}

// TestPruneDead: a member dead past the retention leaves the queue's dead
// events (the stream no longer holds its event); one dead since stays; and
// the work is done once per PruneEvery whoever asks.
func TestPruneDead(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const retention = 2 * time.Second
	s, err := results.New(b.rdb, b.queue, results.WithRetention(retention))
	require.NoError(t, err)
	b.store = s
	deadEvents := "cardimport:{" + b.queue + "}:results:dead"
	b.settle(t, "no-old", "night", results.OutcomeDead, "")
	b.settle(t, "no-again", "night", results.OutcomeDead, "")
	time.Sleep(retention + 100*time.Millisecond)
	// no-again's task gone (past asynq's retention), enqueued and dead
	// again: its new dead event is fresh.
	require.NoError(t, b.rdb.Del(ctx, "asynq:{"+b.queue+"}:t:no-again").Err())
	fresh := b.settle(t, "no-again", "night", results.OutcomeDead, "")
	b.settle(t, "no-new", "night", results.OutcomeDead, "")

	n, err := s.PruneDead(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	left, err := b.rdb.HGetAll(ctx, deadEvents).Result()
	require.NoError(t, err)
	require.Len(t, left, 2)
	require.Equal(t, fresh, left["no-again"])
	require.Contains(t, left, "no-new")

	// Another worker asks within the hour: nothing to do, nothing done.
	b.settle(t, "no-later", "night", results.OutcomeDead, "")
	require.NoError(t, b.rdb.HSet(ctx, deadEvents, "no-ancient", "1-0").Err())
	n, err = s.PruneDead(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	ttl, err := b.rdb.TTL(ctx, "cardimport:{"+b.queue+"}:results:dead:pruned").Result()
	require.NoError(t, err)
	require.InDelta(t, results.PruneEvery.Seconds(), ttl.Seconds(), 5)
	require.NoError(t, b.rdb.Del(ctx, "cardimport:{"+b.queue+"}:results:dead:pruned").Err())
	n, err = s.PruneDead(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "an hour later: the ancient one")
}

// TestMemberOfAnEarlierRun: a member dead in one run, whose task asynq has
// since dropped (its archive holds 10,000 tasks at most), enqueued again in
// a later run: the later run counts the member's new outcome and settles;
// the earlier run's counts stay as they were.
func TestMemberOfAnEarlierRun(t *testing.T) {
	t.Parallel()
	for _, outcome := range []string{results.OutcomeDead, results.OutcomeImported} {
		t.Run(outcome, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := context.Background()
			runA, runB := "first-"+outcome, "later-"+outcome
			require.NoError(t, b.store.StartRun(ctx, runA))
			require.NoError(t, b.store.CountEnqueued(ctx, runA, 1, 0, 0))
			require.NoError(t, b.store.CloseRun(ctx, runA))
			b.settle(t, "no-1", runA, results.OutcomeDead, "")
			require.True(t, b.run(t, runA).Settled())

			require.NoError(t, b.rdb.Del(ctx, "asynq:{"+b.queue+"}:t:no-1").Err())
			require.NoError(t, b.store.StartRun(ctx, runB))
			require.NoError(t, b.store.CountEnqueued(ctx, runB, 1, 0, 0))
			require.NoError(t, b.store.CloseRun(ctx, runB))
			b.settle(t, "no-1", runB, outcome, "333333333333")

			later := b.run(t, runB)
			require.True(t, later.Settled(), "%+v", later)
			require.Equal(t, int64(0), later.Waiting)
			require.Equal(t, int64(1), later.Imported+later.AlreadyMember+later.Dead)
			earlier := b.run(t, runA)
			require.Equal(t, int64(1), earlier.Dead)
		})
	}
}

// TestReplayMovesTheMember: a dead member replayed (a new task of the same
// payload, as enqueue dead replay makes, which marks it) and imported moves
// from dead to imported in its run, in a run with an index of its dead
// members and in one whose first outcome came before the index.
func TestReplayMovesTheMember(t *testing.T) {
	t.Parallel()
	for _, indexed := range []bool{true, false} {
		t.Run(fmt.Sprintf("indexed=%v", indexed), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := context.Background()
			run := fmt.Sprintf("replayed-%v", indexed)
			require.NoError(t, b.store.StartRun(ctx, run))
			require.NoError(t, b.store.CountEnqueued(ctx, run, 2, 0, 0))
			require.NoError(t, b.store.CloseRun(ctx, run))
			b.settle(t, "no-1", run, results.OutcomeDead, "")
			if !indexed {
				require.NoError(t, b.rdb.HDel(ctx, "cardimport:{"+b.queue+"}:run:"+run, "dead_index").Err())
				require.NoError(t, b.rdb.Del(ctx, "cardimport:{"+b.queue+"}:run-dead:"+run).Err())
			}
			b.settle(t, "no-2", run, results.OutcomeDead, "")
			require.Equal(t, int64(2), b.run(t, run).Dead)

			require.NoError(t, b.store.MarkReplay(ctx, run, "no-1"))
			require.NoError(t, b.rdb.Del(ctx, "asynq:{"+b.queue+"}:t:no-1").Err())
			b.settle(t, "no-1", run, results.OutcomeImported, "444444444444")
			r := b.run(t, run)
			require.Equal(t, [3]int64{1, 1, 0}, [3]int64{r.Imported, r.Dead, r.Waiting}, "%+v", r)
			require.True(t, r.Settled())
		})
	}
}

// TestMemberEnqueuedAgainIntoItsRun: a member dead in a run, enqueued again
// into the same run once asynq dropped its task (not a replay: the enqueue
// is counted), counts as a second member of the run, and the run settles.
// The task asynq itself puts back (asynqmon's "run" on the archived task)
// is a replay.
func TestMemberEnqueuedAgainIntoItsRun(t *testing.T) {
	t.Parallel()
	for _, outcome := range []string{results.OutcomeDead, results.OutcomeImported} {
		t.Run(outcome, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := context.Background()
			run := "again-" + outcome
			require.NoError(t, b.store.StartRun(ctx, run))
			require.NoError(t, b.store.CountEnqueued(ctx, run, 1, 0, 0))
			b.settle(t, "no-1", run, results.OutcomeDead, "")
			require.NoError(t, b.rdb.Del(ctx, "asynq:{"+b.queue+"}:t:no-1").Err())
			require.NoError(t, b.store.CountEnqueued(ctx, run, 1, 0, 0))
			require.NoError(t, b.store.CloseRun(ctx, run))
			b.settle(t, "no-1", run, outcome, "555555555555")
			r := b.run(t, run)
			require.True(t, r.Settled(), "%+v", r)
			require.Equal(t, int64(2), r.Imported+r.Dead, "%+v", r)
		})
	}
	t.Run("asynq puts the task back", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		run := "put-back"
		require.NoError(t, b.store.StartRun(ctx, run))
		require.NoError(t, b.store.CountEnqueued(ctx, run, 1, 0, 0))
		require.NoError(t, b.store.CloseRun(ctx, run))
		b.settle(t, "no-1", run, results.OutcomeDead, "")
		b.settle(t, "no-1", run, results.OutcomeImported, "666666666666")
		r := b.run(t, run)
		require.Equal(t, [3]int64{1, 0, 0}, [3]int64{r.Imported, r.Dead, r.Waiting}, "%+v", r)
	})
}

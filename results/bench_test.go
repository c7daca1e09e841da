package results_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/results"
)

// Benchmarks of what runs and outcomes cost (issue 16): the Redis memory an
// outcome and a run take, and Export's rows a second over many outcomes
// with the exporter's memory. They need a real Redis (REDIS_URL) and skip
// without one. bench/results.sh runs them with a million outcomes:
//
//	REDIS_URL=redis://127.0.0.1:6379/0 go test -run '^$' -bench . ./results
//	REDIS_URL=... BENCH_OUTCOMES=1000000 go test -run '^$' -bench Export ./results

// benchOutcomes is how many outcomes BenchmarkExport reads: BENCH_OUTCOMES,
// 100,000 by default so that a plain `go test -bench .` stays short.
func benchOutcomes(b *testing.B) int {
	v := os.Getenv("BENCH_OUTCOMES")
	if v == "" {
		return 100_000
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("BENCH_OUTCOMES: want a positive number, got %q", v)
	}
	return n
}

// benchRedis is the Redis of REDIS_URL and a queue of the benchmark's
// own, or skips: miniredis does not measure memory, and it runs in the
// benchmark's process, whose heap and CPU it would swell with its own.
func benchRedis(b *testing.B) (*testkit.Redis, redis.UniversalClient, string) {
	b.Helper()
	r := testkit.NewRedis(b)
	if r.Embedded != nil {
		b.Skip("set REDIS_URL: these figures need a real Redis")
	}
	rdb := r.Opt.MakeRedisClient().(redis.UniversalClient)
	b.Cleanup(func() { _ = rdb.Close() })
	return r, rdb, r.Queue(b)
}

// A card ID, a run ID and an out_request_no as long as real ones: what an
// outcome costs is mostly its values.
const (
	benchCard = "pbLatjvWOibDc5-TBnbUk1pD12o0"
	benchRun  = "20261204T183000Z-7f3a"
)

func benchOutRequestNo(i int) string { return fmt.Sprintf("1900000001-20261204-%09d", i) }

// benchEvent is outcome i of a night's mix: 85 % imported, 10 % already
// members, 5 % dead with WeChat's refusal.
func benchEvent(i int) results.Event {
	e := results.Event{OutRequestNo: benchOutRequestNo(i), CardID: benchCard, Run: benchRun,
		Outcome: results.OutcomeImported, Code: fmt.Sprintf("88%010d", i)}
	switch i % 20 {
	case 0:
		e.Outcome, e.Code = results.OutcomeDead, ""
		e.Reason, e.HTTPStatus, e.WeChatCode, e.Message = "permanent", 400, "INVALID_REQUEST", "用户近一年无微信支付交易，不满足导入条件"
	case 1, 2:
		e.Outcome = results.OutcomeAlreadyMember
	}
	return e
}

// settleBench records e as the worker's handler does, with the task's
// result as tasks.Result encodes it.
func settleBench(ctx context.Context, s *results.Store, e results.Event) error {
	res := fmt.Sprintf(`{"outcome":%q,"code":%q}`, e.Outcome, e.Code)
	if e.Outcome == results.OutcomeDead {
		res = fmt.Sprintf(`{"outcome":"dead","reason":%q,"http_status":%d,"wechat_code":%q,"message":%q}`, e.Reason, e.HTTPStatus, e.WeChatCode, e.Message)
	}
	q := s.Queue()
	k := results.SettleKeys{Task: "asynq:{" + q + "}:t:" + e.OutRequestNo,
		DeadRecord: "cardimport:{" + q + "}:dead:" + e.OutRequestNo, DeadIndex: "cardimport:{" + q + "}:dead"}
	_, err := s.Settle(ctx, k, results.Settlement{Result: []byte(res), Event: e})
	return err
}

// memoryUsage is MEMORY USAGE key SAMPLES 0: every element counted, not
// an estimate from a sample.
func memoryUsage(b *testing.B, rdb redis.UniversalClient, key string) float64 {
	b.Helper()
	n, err := rdb.MemoryUsage(context.Background(), key, 0).Result()
	if err != nil {
		b.Fatalf("memory usage %s: %v", key, err)
	}
	return float64(n)
}

// BenchmarkSettle settles one outcome an op, as the worker's handler does
// (one script: the task's result, the event, the run's counts), then
// reports what one event takes in the queue's stream. At least 10,000 are
// settled, so the stream's own overhead is spread thin.
func BenchmarkSettle(b *testing.B) {
	_, rdb, q := benchRedis(b)
	s, err := results.New(rdb, q)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := s.StartRun(ctx, benchRun); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if err := settleBench(ctx, s, benchEvent(n)); err != nil {
			b.Fatal(err)
		}
		n++
	}
	for ; n < 10_000; n++ {
		if err := settleBench(ctx, s, benchEvent(n)); err != nil {
			b.Fatal(err)
		}
	}
	if got, err := rdb.XLen(ctx, results.StreamKey(q)).Result(); err != nil || got != int64(n) {
		b.Fatalf("stream holds %d events (%v), want %d", got, err, n)
	}
	b.ReportMetric(memoryUsage(b, rdb, results.StreamKey(q))/float64(n), "stream_B/outcome")
}

// BenchmarkRunMemory reports what one run takes in Redis: its hash with
// every field set (counts of a two-million-member night, start, update,
// closed, settled) and its entry in the queue's index of runs. An op opens,
// counts and settles one run.
func BenchmarkRunMemory(b *testing.B) {
	_, rdb, q := benchRedis(b)
	s, err := results.New(rdb, q)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	// The keys of a run, as package results lays them out (newKeys).
	runKey := func(id string) string { return "cardimport:{" + q + "}:run:" + id }
	runsKey := "cardimport:{" + q + "}:runs"
	oneRun := func(i int) string {
		id := fmt.Sprintf("%s%04d", benchRun[:len(benchRun)-4], i)
		if err := s.StartRun(ctx, id); err != nil {
			b.Fatal(err)
		}
		if err := s.CountEnqueued(ctx, id, 3, 0, 0); err != nil {
			b.Fatal(err)
		}
		for j, outcome := range []string{results.OutcomeImported, results.OutcomeAlreadyMember, results.OutcomeDead} {
			e := results.Event{OutRequestNo: fmt.Sprintf("%s-%d", id, j), CardID: benchCard, Run: id, Outcome: outcome}
			if err := settleBench(ctx, s, e); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.CloseRun(ctx, id); err != nil {
			b.Fatal(err)
		}
		// The counts of a real night: larger integers take a few bytes
		// more in the hash.
		if err := rdb.HSet(ctx, runKey(id), "enqueued", 2_000_000, "duplicates", 1234, "invalid", 56,
			"imported", 1_900_000, "already_member", 95_000, "dead", 5000).Err(); err != nil {
			b.Fatal(err)
		}
		return id
	}
	b.ReportAllocs()
	var ids []string
	for b.Loop() {
		ids = append(ids, oneRun(len(ids)))
	}
	for len(ids) < 100 {
		ids = append(ids, oneRun(len(ids)))
	}
	r, err := s.Run(ctx, ids[0])
	if err != nil || !r.Settled() {
		b.Fatalf("run %s: %+v, %v: want settled", ids[0], r, err)
	}
	var hashes float64
	for _, id := range ids {
		hashes += memoryUsage(b, rdb, runKey(id))
	}
	n := float64(len(ids))
	b.ReportMetric(hashes/n, "run_B/run")
	b.ReportMetric(memoryUsage(b, rdb, runsKey)/n, "index_B/run")
}

// fillScript appends ARGV[2] outcome events to the stream KEYS[1], the i-th
// (from ARGV[1]) a copy of template i % #templates with its out_request_no
// ARGV[3] followed by i on nine digits. ARGV[4] is the number of field
// strings of a template, the templates follow. It is how BenchmarkExport
// puts a million events in a few seconds: the events are the ones Settle
// writes (the templates are read back from it), without a round trip each.
var fillScript = redis.NewScript(`
local first, count, prefix, width = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local ntpl = (#ARGV - 4) / width
for i = first, first + count - 1 do
  local base = 4 + (i % ntpl) * width
  local f = {}
  for j = 1, width do f[j] = ARGV[base + j] end
  for j = 1, width, 2 do
    if f[j] == 'out_request_no' then f[j + 1] = prefix .. string.format('%09d', i) end
  end
  redis.call('XADD', KEYS[1], '*', unpack(f))
end
return count
`)

// fillOutcomes puts n outcome events of the night's mix in queue's stream.
func fillOutcomes(b *testing.B, rdb redis.UniversalClient, s *results.Store, n int) {
	b.Helper()
	ctx := context.Background()
	stream := results.StreamKey(s.Queue())
	// One of each of twenty events through Settle, read back as written.
	const kinds = 20
	for i := range kinds {
		if err := settleBench(ctx, s, benchEvent(i)); err != nil {
			b.Fatal(err)
		}
	}
	// Read raw, not through go-redis's map: the fields' order must stay
	// Settle's, since a stream stores the field names once for a run of
	// entries that share them, and that is part of what an entry costs.
	written, err := rdb.Do(ctx, "XRANGE", stream, "-", "+").Slice()
	if err != nil || len(written) != kinds {
		b.Fatalf("read back %d templates (%v)", len(written), err)
	}
	if err := rdb.Del(ctx, stream).Err(); err != nil {
		b.Fatal(err)
	}
	var width int
	var args []any
	for _, entry := range written {
		fields := entry.([]any)[1].([]any)
		args = append(args, fields...)
		width = len(fields)
	}
	// Batches of 10,000: each script holds Redis a few tens of
	// milliseconds, not the seconds a million would, on a shared server.
	const batch = 10_000
	for first := 0; first < n; first += batch {
		count := min(batch, n-first)
		argv := append([]any{first, count, "1900000001-20261204-", width}, args...)
		if err := fillScript.Run(ctx, rdb, []string{stream}, argv...).Err(); err != nil {
			b.Fatalf("fill: %v", err)
		}
	}
}

// heapPeak tracks the Go heap's peak while an export runs.
type heapPeak struct {
	peak uint64
	ms   runtime.MemStats
}

func (h *heapPeak) sample() {
	runtime.ReadMemStats(&h.ms)
	h.peak = max(h.peak, h.ms.HeapAlloc)
}

// BenchmarkExport exports BENCH_OUTCOMES outcomes (100,000 by default;
// bench/results.sh a million) and reports rows a second, the bytes and
// allocations a row costs, and the exporter's peak Go heap: memory is flat
// when the peak stays the same at any number of outcomes. "events" only
// receives each outcome; "csv" also writes it as a CSV line of the
// export's columns (as `enqueue results export` does), so its MB/s is what
// a disk would have to keep up with; "xrange" is the floor under both,
// the stream read a page at a time with nothing decoded into events.
func BenchmarkExport(b *testing.B) {
	n := benchOutcomes(b)
	_, rdb, q := benchRedis(b)
	s, err := results.New(rdb, q)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	fillOutcomes(b, rdb, s, n)
	b.Logf("filled %d outcomes in %s", n, time.Since(start).Round(time.Millisecond))
	b.Logf("stream: %.1f MB in Redis", memoryUsage(b, rdb, results.StreamKey(q))/1e6)

	run := func(b *testing.B, write func(results.Event) error) {
		ctx := context.Background()
		var h heapPeak
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		var rows int
		b.ReportAllocs()
		for b.Loop() {
			got := 0
			err := s.Export(ctx, results.Filter{}, func(e results.Event) error {
				got++
				if got%16384 == 0 {
					h.sample()
				}
				return write(e)
			})
			if err != nil {
				b.Fatal(err)
			}
			if got != n {
				b.Fatalf("exported %d rows, want %d", got, n)
			}
			rows += got
		}
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
		b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(rows), "B/row")
		b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(rows), "allocs/row")
		b.ReportMetric(float64(h.peak)/(1<<20), "peak_heap_MiB")
	}
	b.Run("xrange", func(b *testing.B) {
		ctx := context.Background()
		var rows int
		b.ReportAllocs()
		for b.Loop() {
			// Pages of 1,000 entries, as Export reads them.
			for start := "-"; ; {
				msgs, err := rdb.XRangeN(ctx, results.StreamKey(q), start, "+", 1000).Result()
				if err != nil {
					b.Fatal(err)
				}
				rows += len(msgs)
				if len(msgs) < 1000 {
					break
				}
				start = "(" + msgs[len(msgs)-1].ID
			}
		}
		b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("events", func(b *testing.B) {
		run(b, func(results.Event) error { return nil })
	})
	b.Run("csv", func(b *testing.B) {
		var out countingWriter
		w := csv.NewWriter(&out)
		record := make([]string, 8)
		run(b, func(e results.Event) error {
			record[0], record[1], record[2], record[3] = e.OutRequestNo, e.CardID, e.Run, e.Outcome
			record[4], record[5], record[6] = e.Code, e.WeChatCode, e.Message
			record[7] = e.FinishedAt.Format(time.RFC3339Nano)
			return w.Write(record)
		})
		w.Flush()
		b.ReportMetric(float64(out.n)/1e6/b.Elapsed().Seconds(), "csv_MB/s")
	})
}

// countingWriter is io.Discard that counts the bytes.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// BenchmarkRunRefusals: what the Runs page reads to group one run's
// refusals, a run of 2,000 members with 100 dead whose outcomes came among
// BENCH_OUTCOMES of other runs' (100,000 by default): "index" reads the
// run's index of its dead members (DeadOf, what the page does), "stream"
// the queue's outcomes from the run's start on (Export, what it did before
// the index, and still does for a run settled before it). index_B/dead is
// the Redis memory the index takes for each dead member.
func BenchmarkRunRefusals(b *testing.B) {
	n := benchOutcomes(b)
	_, rdb, q := benchRedis(b)
	s, err := results.New(rdb, q)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	const run, members, dead = "refusals-bench", 2000, 100
	if err := s.StartRun(ctx, run); err != nil {
		b.Fatal(err)
	}
	started := time.Now().Add(-time.Second)
	fillOutcomes(b, rdb, s, n)
	for i := range members {
		e := benchEvent(n + i)
		e.Run, e.Outcome, e.Code = run, results.OutcomeImported, fmt.Sprintf("88%010d", n+i)
		if i%(members/dead) == 0 {
			e = benchEvent(0) // dead, with WeChat's refusal
			e.OutRequestNo, e.Run = benchOutRequestNo(n+i), run
		}
		if err := settleBench(ctx, s, e); err != nil {
			b.Fatal(err)
		}
	}
	count := func(b *testing.B, read func(fn func(results.Event) error) error) {
		for b.Loop() {
			got := 0
			if err := read(func(e results.Event) error {
				if e.Outcome == results.OutcomeDead {
					got++
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			if got != dead {
				b.Fatalf("%d dead, want %d", got, dead)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/page")
	}
	b.Run("index", func(b *testing.B) {
		count(b, func(fn func(results.Event) error) error {
			indexed, err := s.DeadOf(ctx, run, fn)
			if err == nil && !indexed {
				err = fmt.Errorf("no index")
			}
			return err
		})
		b.ReportMetric(memoryUsage(b, rdb, "cardimport:{"+q+"}:run-dead:"+run)/dead, "index_B/dead")
	})
	b.Run("stream", func(b *testing.B) {
		count(b, func(fn func(results.Event) error) error {
			return s.Export(ctx, results.Filter{Run: run, Since: started}, fn)
		})
	})
}

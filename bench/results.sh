#!/usr/bin/env bash
# What runs and outcomes cost (issue: import runs and results back to the
# registration system), against the Redis of REDIS_URL (each benchmark uses
# a queue of its own and deletes it):
#   - the Redis memory one outcome event takes in the queue's stream
#     (MEMORY USAGE over at least 10,000 events settled as the worker does,
#     the night's mix: 85 % imported, 10 % already members, 5 % dead), and
#     one Settle's round trip;
#   - the Redis memory one run takes: its hash, every field set, and its
#     entry in the queue's index of runs;
#   - Export's rows a second over 100,000 and 1,000,000 outcomes, the bytes
#     and allocations a row costs and the exporter's peak Go heap (the same
#     at both sizes: memory flat), next to the floor of reading the stream
#     alone and to writing the rows as CSV (MB/s, against a disk's speed);
#   - what the Runs page reads to group a run's 100 refusals among those
#     outcomes: the run's index of its dead members against the stream.
# A million outcomes take about 150 MB in Redis while the benchmark runs.
# Usage: REDIS_URL=redis://127.0.0.1:6379/0 bench/results.sh [sizes, default "100000 1000000"]
set -euo pipefail
cd "$(dirname "$0")/.."
: "${REDIS_URL:?set REDIS_URL, e.g. redis://127.0.0.1:6379/0}"
sizes="${1:-100000 1000000}"
out="$(mktemp /tmp/results-bench.XXXXXX)"
trap 'rm -f "$out"' EXIT

go test -count=1 -run '^$' -bench 'Settle|RunMemory' -timeout 30m ./results | tee "$out"
for n in $sizes; do
	echo "outcomes $n" >>"$out"
	BENCH_OUTCOMES="$n" go test -count=1 -run '^$' -bench 'Export' -benchtime 1x -timeout 30m ./results | tee -a "$out"
	BENCH_OUTCOMES="$n" go test -count=1 -run '^$' -bench 'RunRefusals' -benchtime 3x -timeout 30m ./results | tee -a "$out"
done

# The figures, each named.
awk '
function figures() { delete v; for (i = 3; i < NF; i += 2) v[$(i + 1)] = $i }
/^BenchmarkSettle/ {
	figures()
	printf "outcome   %6.1f B in the stream an event   (one Settle: %.1f us, a round trip)\n", v["stream_B/outcome"], v["ns/op"] / 1000
}
/^BenchmarkRunMemory/ {
	figures()
	printf "run       %6.1f B its hash, %.1f B its entry in the index of runs\n", v["run_B/run"], v["index_B/run"]
}
/^outcomes / { printf "export of %d outcomes\n", $2 }
/^BenchmarkExport\/xrange/ {
	figures()
	printf "  stream read alone  %8.0f rows/s  (the floor)\n", v["rows/s"]
}
/^BenchmarkExport\/events/ {
	figures()
	printf "  Export             %8.0f rows/s  %6.0f B/row  %5.1f allocs/row  peak heap %.1f MiB\n", v["rows/s"], v["B/row"], v["allocs/row"], v["peak_heap_MiB"]
}
/^BenchmarkRunRefusals\/index/ {
	figures()
	printf "  a run'"'"'s 100 refusals from its index   %8.1f ms  (%.0f B in Redis a dead member)\n", v["ms/page"], v["index_B/dead"]
}
/^BenchmarkRunRefusals\/stream/ {
	figures()
	printf "  the same from the stream           %8.1f ms\n", v["ms/page"]
}
/^BenchmarkExport\/csv/ {
	figures()
	printf "  Export to CSV      %8.0f rows/s  %6.1f MB/s of CSV            peak heap %.1f MiB\n", v["rows/s"], v["csv_MB/s"], v["peak_heap_MiB"]
}
' "$out"

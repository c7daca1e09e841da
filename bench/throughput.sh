#!/usr/bin/env bash
# Throughput benchmark (issue: hold under load and faults), in one run on
# this machine, against the Redis of REDIS_URL (each run uses queues of its
# own and deletes them):
#   - floor: imports/s of an asynq server doing only the RSA work of one
#     import (2 signatures, 2 verifications), concurrency 20;
#   - e2e: imports/s of a real worker process (default concurrency) against
#     a real wechatpay-sandbox process, 3,000 members, and its ratio to the
#     floor (goal ≥ 0.8);
#   - latency p50/p99 from enqueue to completed at 20 imports/s;
#   - the worker's peak resident memory at --concurrency 100 (and its
#     imports/s there).
# Usage: REDIS_URL=redis://127.0.0.1:6379/0 bench/throughput.sh [runs, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
: "${REDIS_URL:?set REDIS_URL, e.g. redis://127.0.0.1:6379/0}"
runs="${1:-3}"
out="$(mktemp /tmp/throughput-bench.XXXXXX)"
trap 'rm -f "$out"' EXIT

go test -count="$runs" -run '^$' -bench Throughput -benchtime 1x -timeout 30m \
	./internal/throughput | tee "$out"

# A block per run, each figure named.
awk '
/^BenchmarkThroughput/ {
	for (i = 5; i < NF; i += 2) v[$(i + 1)] = $i
	n++
	printf "run %d\n", n
	printf "  crypto floor        %7.1f imports/s  (%.2f ms CPU an import)\n", v["floor_imports/s"], v["floor_cpu_ms/import"]
	printf "  end to end          %7.1f imports/s  (%.2f ms CPU an import: worker %.2f, sandbox %.2f, producer)\n", v["e2e_imports/s"], v["e2e_cpu_ms/import"], v["worker_cpu_ms/import"], v["sandbox_cpu_ms/import"]
	printf "  ratio               %7.3f           (goal >= 0.8; by CPU an import: %.3f)\n", v["ratio"], v["cpu_ratio"]
	printf "  latency at 20/s     p50 %.1f ms, p99 %.1f ms\n", v["p50_ms"], v["p99_ms"]
	printf "  --concurrency 100   %7.1f imports/s, worker peak RSS %.1f MB\n", v["c100_imports/s"], v["peak_rss_MB"]
}
' "$out"

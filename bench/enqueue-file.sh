#!/usr/bin/env bash
# Benchmarks of `enqueue file` (issue: bulk enqueue), against a private
# Redis so that a million tasks never land in a shared one:
#   - 200,000 rows through `enqueue file` next to a bare loop of asynq
#     Client.Enqueue calls by as many goroutines (16), same Redis: rows/s of
#     each and their ratio (goal ≥ 0.9);
#   - 1,000,000 rows in a process of its own: peak resident memory (goal
#     < 64 MB).
# Usage: bench/enqueue-file.sh [benchtime, default 3x]
set -euo pipefail
cd "$(dirname "$0")/.."
benchtime="${1:-3x}"
port="${BENCH_REDIS_PORT:-6397}"
dir="$(mktemp -d /tmp/enqueue-bench.XXXXXX)"

redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
	--dir "$dir" --logfile "$dir/redis.log" --daemonize yes --pidfile "$dir/redis.pid"
# The server is gone, its port free, before the script exits: a run right
# after this one starts its own on the same port.
stop_redis() {
	local pid
	pid="$(cat "$dir/redis.pid" 2>/dev/null)" || { rm -rf "$dir"; return; }
	kill "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	rm -rf "$dir"
}
trap stop_redis EXIT
for _ in $(seq 1 50); do
	redis-cli -p "$port" ping >/dev/null 2>&1 && break
	sleep 0.1
done

REDIS_URL="redis://127.0.0.1:$port/0" go test -count=1 -run '^$' \
	-bench "${BENCH:-EnqueueFile}" -benchtime "$benchtime" -timeout 30m ./internal/enqueuecmd

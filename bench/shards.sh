#!/usr/bin/env bash
# Throughput across shards (issue: past one Redis): 1, 2 and 4 worker
# processes a queue over three queues, on a three-master Redis Cluster (a
# queue a master, through redis-cluster://) and on one Redis server, each
# run 2,000 members a queue enqueued at once into real worker processes and
# a real wechatpay-sandbox process; prints imports a second and the CPU an
# import of the workers, the Redis servers and the sandbox.
#
# On one 2-core machine every process shares the same two cores: more
# processes and more masters show what they cost (CPU an import), not the
# scale they give on machines of their own (imports a second falls, it does
# not rise). The benchmark starts its own servers on loopback ports; it
# needs redis-server and redis-cli in PATH, not REDIS_URL.
# Usage: bench/shards.sh [runs, default 1]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
deployment_bench Shards "${1:-1}"

echo "note: one 2-core machine shares its cores among every process below:"
echo "      this shows the overhead of more processes and masters, not scale."
printf '%-12s %-9s %-10s %10s %12s %12s %12s\n' deployment "workers/q" processes "imports/s" "worker ms" "redis ms" "sandbox ms"
awk '
/^BenchmarkShards/ {
	for (i = 3; i < NF; i += 2) v[$(i + 1)] = $i
	n = split("one_server cluster3", ds, " ")
	for (d = 1; d <= n; d++) for (k = 1; k <= 4; k *= 2) {
		u = ds[d] "_w" k
		printf "%-12s %-9d %-10d %10.1f %12.2f %12.3f %12.2f\n", ds[d], k, 3 * k, v[u "_imports/s"], v[u "_worker_cpu_ms/import"], v[u "_redis_cpu_ms/import"], v[u "_sandbox_cpu_ms/import"]
	}
}
' "$out"

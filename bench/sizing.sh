#!/usr/bin/env bash
# Redis memory the queue needs (issue: past one Redis), measured on a Redis
# server of the benchmark's own (nothing else in it) as INFO memory's
# used_memory grows, with no worker connected: per pending task, per
# member imported and kept (the task for its retention, its outcome for
# RESULTS_RETENTION), per outcome, per webhook delivery kept, per dead
# member (dead letter, archived task); and Redis's CPU an import, whose
# inverse is the imports a second one master's core carries. The figures
# of docs/deployment.md's sizing table. Needs redis-server in PATH.
# Usage: bench/sizing.sh [runs, default 1]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
deployment_bench Sizing "${1:-1}"

awk '
/^BenchmarkSizing/ {
	for (i = 3; i < NF; i += 2) v[$(i + 1)] = $i
	n++
	printf "run %d\n", n
	printf "  pending task                    %6.0f B\n", v["pending_B"]
	printf "  member imported, kept           %6.0f B  (task %.0f B, outcome %.0f B)\n", v["finished_B"], v["task_kept_B"], v["outcome_B"]
	printf "  webhook delivery kept (24 h)    %6.0f B\n", v["webhook_B"]
	printf "  dead member                     %6.0f B  (dead letter %.0f B, archived task %.0f B, outcome)\n", v["dead_B"], v["dead_letter_B"], v["archived_task_B"]
	printf "  redis CPU an import             %6.3f ms (one core: %.0f imports/s)\n", v["redis_cpu_ms/import"], 1 / v["redis_cpu_ms/import"] * 1000
}
' "$out"

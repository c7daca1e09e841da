#!/usr/bin/env bash
# The fault suite (issue: hold under load and faults), with its figures:
# each scenario imports 3,000 members through real worker processes into
# the WeChat Pay emulator, 10 % of first attempts failing, while a fault
# hits — a worker SIGKILLed three times, Redis SIGKILLed and restarted,
# WeChat answering 503 for a minute, answers slower than the HTTP timeout,
# three workers and two `enqueue file` runs at once — and prints, per
# scenario, the time from the fault to full recovery. The tests run only
# with FAULTS=1, as here and in .ci/run's own step for them.
# The scenarios run at the same time, so they share the two cores; run
# with `-parallel 1` (FAULTS_PARALLEL=1) for each one alone (about 6 min).
# Usage: REDIS_URL=redis://127.0.0.1:6379/0 bench/faults.sh
# Needs redis-server in PATH for the Redis restart, and redis-sentinel and
# redis-cli for the Sentinel and Cluster failovers (docs/deployment.md),
# which start their own servers on loopback ports; REDIS_URL may be unset
# (embedded miniredis for the other scenarios).
set -euo pipefail
cd "$(dirname "$0")/.."
args=(-count=1 -v -run . -timeout 20m)
if [[ -n "${FAULTS_PARALLEL:-}" ]]; then
	args+=(-parallel "$FAULTS_PARALLEL")
fi
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
status=0
FAULTS=1 go test "${args[@]}" ./internal/faultsuite >"$out" 2>&1 || status=$?
grep -E '^\s+[a-z_]+_test\.go:[0-9]+: faults:|^--- |^(ok|FAIL)' "$out" | sed -E 's/^\s+[a-z_]+_test\.go:[0-9]+: //'
if [[ $status -ne 0 ]]; then
	echo "--- full output:"; cat "$out"
fi
exit "$status"

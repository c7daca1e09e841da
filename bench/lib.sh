# Sourced by the benchmark scripts of bench/deployment (shards.sh,
# sizing.sh); not a benchmark itself.

# deployment_bench NAME RUNS runs BenchmarkNAME of ./bench/deployment RUNS
# times, once each (-benchtime 1x), into the file named by $out, which is
# removed on exit. On a failure it prints the whole output and exits 1.
deployment_bench() {
	out="$(mktemp "/tmp/deployment-bench.XXXXXX")"
	trap 'rm -f "$out"' EXIT
	go test -count="$2" -run '^$' -bench "$1" -benchtime 1x -timeout 30m \
		./bench/deployment >"$out" 2>&1 || { cat "$out"; exit 1; }
}

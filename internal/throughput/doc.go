// Package throughput holds only a benchmark (throughput_test.go): how many
// imports a second the whole product carries — producer, Redis, a real
// worker process, a real sandbox process — next to the floor that the
// cryptography of one import sets on the same machine, the latency of an
// import at a light load, and the worker's peak memory. bench/throughput.sh
// runs it.
package throughput

// Package deployment holds only benchmarks of the deployments of
// docs/deployment.md, against real Redis servers the benchmarks start on
// loopback ports (redisconntest):
//
//   - BenchmarkShards (bench/shards.sh): imports a second and CPU an
//     import of 1, 2 and 4 worker processes a queue over three queues, on
//     a three-master Redis Cluster and on one server;
//   - BenchmarkSizing (bench/sizing.sh): Redis memory per pending task, per
//     finished task kept, per outcome, per dead letter and per webhook
//     delivery kept, measured on a server of its own.
package deployment

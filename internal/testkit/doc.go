// Package testkit is the project's test scaffolding, for tests and
// benchmarks only:
//
//   - a Redis per test (redis.go): NewRedis, the server named by REDIS_URL
//     or an embedded miniredis, with a queue name of the test's own
//     (Redis.Queue) dropped when the test ends; NewPrivateRedis, a database
//     of the test's own; Context; PendingImports;
//   - WaitState (wait.go), which polls an asynq task until it reaches a
//     state and fails the test, naming what it last saw, after a deadline;
//   - Buffer (buffer.go), a log sink the worker's goroutines write to while
//     the test reads it;
//   - the project's commands built once per test binary (build.go: Main for
//     a package's TestMain, Command) and run as real processes (process.go:
//     Start, WorkerEnv, Environ), and Long, which skips a long test unless
//     LONG=1.
//
// It imports tasks, internal/redisconn and internal/wechatpay/wechatpaytest,
// so those packages' (and their dependencies') own tests use it only from an
// external _test package.
package testkit

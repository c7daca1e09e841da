// Package worker wires the import worker together: configuration, logger,
// Redis checks, the WeChat Pay client, the task handler and the asynq
// server. cmd/worker only calls Run.
package worker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/cardimport/cardimport/internal/config"
	"github.com/cardimport/cardimport/internal/importer"
	"github.com/cardimport/cardimport/internal/logging"
	"github.com/cardimport/cardimport/internal/redisconn"
	"github.com/cardimport/cardimport/internal/wechatpay"
	"github.com/cardimport/cardimport/tasks"
)

// Run starts the worker and blocks until ctx is cancelled (SIGTERM,
// SIGINT), then finishes or hands back in-flight imports and returns nil.
// `worker check …` runs the preflight (Check) instead.
// Logs go to stdout as JSON; a configuration error is returned.
func Run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "check" {
		return Check(ctx, args[1:], env, stdout, stderr)
	}
	cfg, ok, err := load(args, env, stderr)
	if !ok {
		return err
	}
	log, err := logging.New(stdout, cfg.LogLevel)
	if err != nil {
		return err
	}
	return Serve(ctx, cfg, log)
}

// load reads the worker's configuration, for Run and Check. ok is false
// when there is nothing to run: -h printed the usage (err is nil), or err
// says what is wrong.
func load(args []string, env func(string) string, stderr io.Writer) (cfg config.Worker, ok bool, err error) {
	cfg, err = config.LoadWorker(args, env, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return cfg, false, nil
	}
	return cfg, err == nil, err
}

// Serve runs a worker with a checked configuration until ctx is cancelled.
func Serve(ctx context.Context, cfg config.Worker, log zerolog.Logger) error {
	// go-redis's own lines (a failed dial per pooled connection while Redis
	// is down) join the JSON log instead of printing plain text.
	redis.SetLogger(logging.NewGoRedisLogger(log))
	checkCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	warnings, err := redisconn.Check(checkCtx, cfg.Redis)
	cancel()
	if err != nil {
		return err
	}
	for _, w := range warnings {
		log.Warn().Str("detail", w).Msg("redis check")
	}
	for _, w := range cfg.Warnings {
		log.Warn().Str("detail", w).Msg("config check")
	}

	side, err := startSide(cfg, log)
	if err != nil {
		return err
	}
	defer side.stop()
	if cfg.DashboardOnly {
		return side.dashboardOnly(ctx)
	}

	wcfg := cfg.WeChat
	wcfg.Logger = &log
	if wcfg.AllowHTTP {
		log.Warn().Msg("WECHATPAY_ALLOW_HTTP is set: an http:// base URL off loopback is accepted; signed requests, openids and answers cross the network in the clear")
	}
	client, err := wechatpay.NewClient(ctx, wcfg)
	if err != nil {
		return err
	}
	defer client.Close()

	guarded, closeGuard, err := newGuard(cfg, side.instrument(client), log)
	if err != nil {
		return err
	}
	defer closeGuard()

	dead, err := newDeadLetters(cfg, log)
	if err != nil {
		return err
	}
	defer dead.close()
	handler, err := importer.NewHandler(importer.HandlerConfig{Importer: guarded, Logger: &log, Results: dead.store, Observer: side.observer()})
	if err != nil {
		return err
	}
	srvCfg := serverConfig(cfg, log)
	srvCfg.ErrorHandler = dead
	srv := asynq.NewServer(cfg.Redis, srvCfg)
	mux := asynq.NewServeMux()
	mux.Handle(tasks.TypeImport, handler)
	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	hooks, err := startWebhooks(ctx, cfg, side, log)
	if err != nil {
		srv.Shutdown()
		return err
	}
	defer hooks.stop()
	sweepCtx, stopSweep := context.WithCancel(ctx)
	swept := make(chan struct{})
	go func() { defer close(swept); dead.sweep(sweepCtx, SweepInterval) }()
	defer func() { stopSweep(); <-swept }()
	log.Info().Str("queue", cfg.Queue).Int("concurrency", cfg.Concurrency).
		Str("mode", string(client.Mode())).Float64("rate_limit", cfg.Guard.RateLimit).Msg("worker started")

	<-ctx.Done()
	log.Info().Msg("worker stopping")
	// Tasks waiting for the circuit or the rate limit go back to the
	// queue now rather than at the end of their wait.
	guarded.Stop()
	dead.stopHolding()
	// Shutdown waits up to ShutdownTimeout for in-flight imports, then hands
	// the rest back to the queue without spending a retry.
	srv.Shutdown()
	log.Info().Msg("worker stopped")
	return nil
}

// NewServer returns the asynq server of a worker: the queue, the
// concurrency, the backoff and the rule that rate limits, systemic faults
// and expired leases do not spend retries. Serve adds the dead-letter
// hooks (deadletters.go) to the same configuration.
func NewServer(cfg config.Worker, log zerolog.Logger) *asynq.Server {
	return asynq.NewServer(cfg.Redis, serverConfig(cfg, log))
}

// TaskCheckInterval is how long a worker whose queue is empty waits before
// it looks again (asynq sleeps between half and one and a half of it).
// With asynq's default of a second, an import enqueued into an idle queue
// waited half a second on average before it started (p50 578 ms from
// enqueue to completed at 20 imports a second, internal/throughput); a
// tenth of a second costs an idle worker ten cheap Redis calls a second.
const TaskCheckInterval = 100 * time.Millisecond

func serverConfig(cfg config.Worker, log zerolog.Logger) asynq.Config {
	return asynq.Config{
		Concurrency:     cfg.Concurrency,
		Queues:          map[string]int{cfg.Queue: 1},
		RetryDelayFunc:  importer.RetryDelay(cfg.RetryMinDelay, cfg.RetryMaxDelay),
		IsFailure:       importer.IsFailure,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Logger:          logging.NewAsynqLogger(log),
		LogLevel:        asynq.WarnLevel,
		// Move due retries to pending every second rather than asynq's
		// default five, so a short backoff is honoured closely.
		DelayedTaskCheckInterval: time.Second,
		TaskCheckInterval:        TaskCheckInterval,
		HealthCheckFunc: func(err error) {
			if err != nil {
				log.Error().Err(err).Msg("redis unreachable")
			}
		},
	}
}

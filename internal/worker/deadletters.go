package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/cardimport/cardimport/internal/config"
	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/internal/importer"
	"github.com/cardimport/cardimport/results"
	"github.com/cardimport/cardimport/tasks"
)

// SweepInterval is how often the worker reconciles the dead-letter store
// with asynq's archive. A minute is far inside asynq's 90-day trimming,
// and only a burst of more than 9,999 recoverer-archived tasks within one
// minute could outrun it.
const SweepInterval = time.Minute

// storeTimeout bounds one write to the dead-letter store. The task's own
// context may be cancelled already (a timeout, a shutdown), and the record
// must be written all the same.
const storeTimeout = 5 * time.Second

// deadLetters keeps the dead-letter store in step with the worker:
//
//   - asynq's ErrorHandler records every failure asynq is about to
//     archive. It is asynq's one path for failures, so it also sees those
//     that never return through the handler (an attempt's timeout, a
//     panic, a lease lost on the last retry), and it applies asynq's own
//     archive rule, so it cannot disagree with it. A hook inside
//     importer.Handler would miss those, and would put storage into the
//     package Go producers import.
//   - the import handler's result goes to Redis through the store
//     (Results in importer.HandlerConfig), which removes the record in the
//     same round trip when an import succeeds, whatever put the task
//     back: `enqueue dead replay`, the dashboard's "run", or a fresh
//     `enqueue one` of the same out_request_no.
//   - a sweep, at start and every SweepInterval, records what asynq
//     archived out of the handler's sight (its recoverer, an operator's
//     "archive").
type deadLetters struct {
	store *deadletter.Store
	log   zerolog.Logger
	// stop is closed when the worker stops: outcomes held while Redis is
	// down (redishold.go) are let go, so shutdown is not held up.
	stop     chan struct{}
	stopOnce sync.Once
}

func newDeadLetters(cfg config.Worker, log zerolog.Logger) (*deadLetters, error) {
	var opts []results.Option
	if cfg.ResultsRetention > 0 {
		opts = append(opts, results.WithRetention(cfg.ResultsRetention))
	}
	store, err := deadletter.New(cfg.Redis, cfg.Queue, opts...)
	if err != nil {
		return nil, err
	}
	return &deadLetters{store: store, log: log, stop: make(chan struct{})}, nil
}

func (d *deadLetters) close() { _ = d.store.Close() }

// stopHolding lets go of the outcomes held while Redis is down.
func (d *deadLetters) stopHolding() { d.stopOnce.Do(func() { close(d.stop) }) }

// redisInDoubt reports whether asynq's write of a failed task's outcome
// may meet a Redis that is down: not when asynq has given up on the task
// already (its lease ran out, or the attempt was cancelled), and not for a
// call the guard held back after reading its state in Redis just now.
func redisInDoubt(ctx context.Context, err error) bool {
	if errors.Is(err, asynq.ErrLeaseExpired) || ctx.Err() != nil {
		return false
	}
	var deferred *importer.DeferredError
	return !errors.As(err, &deferred) || deferred.Reason == importer.DeferRedis
}

// HandleError implements asynq.ErrorHandler. asynq calls it on every
// failure, before it decides between retry and archive; it records the
// failure only when asynq is about to archive (the same rule asynq's
// processor applies).
func (d *deadLetters) HandleError(ctx context.Context, task *asynq.Task, err error) {
	if task.Type() != tasks.TypeImport || errors.Is(err, asynq.RevokeTask) {
		return
	}
	if redisInDoubt(ctx, err) {
		// asynq writes the retry (or the archive) right after this
		// returns: hold it until Redis can take it.
		holdWhileRedisDown(ctx, d.store, d.stop)
	}
	retried, ok1 := asynq.GetRetryCount(ctx)
	maxRetry, ok2 := asynq.GetMaxRetry(ctx)
	exhausted := ok1 && ok2 && retried >= maxRetry
	if !errors.Is(err, asynq.SkipRetry) && !exhausted {
		return
	}
	id, _ := asynq.GetTaskID(ctx)
	rec := deadletter.FromFailure(id, task.Payload(), retried+1, err, time.Now())
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err := d.store.Record(wctx, rec); err != nil {
		// The sweep will find the task in asynq's archive.
		d.log.Error().Err(err).Str("task_id", id).Msg("dead letter not recorded")
		return
	}
	d.log.Info().Str("task_id", id).Str("out_request_no", rec.OutRequestNo).Str("card_id", rec.CardID).
		Str("outcome", string(rec.Reason)).Msg("dead letter recorded")
}

// sweep reconciles the store with asynq's archive now and every interval
// until ctx is done, and has the results store prune the dead events past
// its retention (results.Store.PruneDead).
func (d *deadLetters) sweep(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		res, err := d.store.Sweep(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			d.log.Error().Err(err).Msg("dead letter sweep failed")
		case res.Recorded > 0:
			d.log.Warn().Int("archived", res.Archived).Int("recorded", res.Recorded).Msg("dead letters recorded by sweep")
		}
		// Once an hour for the queue, whichever worker comes first.
		switch n, err := d.store.Results().PruneDead(ctx); {
		case err != nil && ctx.Err() == nil:
			d.log.Error().Err(err).Msg("pruning dead events failed")
		case n > 0:
			d.log.Info().Int("pruned", n).Msg("dead events past the results' retention pruned")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/cardimport/cardimport/internal/wechatpay"
)

// Importer imports one member's card into WeChat Pay. *wechatpay.Client is
// the production implementation.
type Importer interface {
	Import(ctx context.Context, req wechatpay.ImportRequest) (wechatpay.ImportResult, error)
}

// HandlerConfig configures a Handler.
type HandlerConfig struct {
	// Importer calls WeChat. Required.
	Importer Importer
	// Logger receives one line per attempt. Defaults to a logger that
	// discards everything.
	Logger *zerolog.Logger
	// Results, when set, stores the result of each finished import in
	// place of the task's own asynq ResultWriter. The worker passes its
	// dead-letter store, which writes the result and drops the member's
	// dead letter in one Redis round trip.
	Results ResultStore
}

// ResultStore stores the result of a finished import: the JSON of a Result,
// under the task's ID (its out_request_no). An error retries the task
// without spending its budget, as a result asynq could not write does.
type ResultStore interface {
	WriteResult(ctx context.Context, taskID string, result []byte) error
}

// Handler processes TypeImport tasks. It maps the kind of WeChat's answer to
// what asynq should do with the task:
//
//	imported        → done, result {"outcome":"imported","code":…}
//	already member  → done, result {"outcome":"already_member"}
//	permanent       → archived at once (asynq.SkipRetry) with the reason
//	rate limited    → retried, not counted against the retry budget
//	systemic        → retried, not counted, logged at error level with a hint
//	transient       → retried with backoff, counted
//	deferred        → (DeferredError: the importer held the call back, or
//	                  the result of an import could not be written to Redis)
//	                  retried after its RetryAfter, not counted
//
// Every retry sends the same out_request_no, so WeChat returns the first
// result again instead of importing twice.
type Handler struct {
	importer Importer
	logger   zerolog.Logger
	results  ResultStore
}

// NewHandler returns a Handler, or an error when cfg lacks its Importer.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if cfg.Importer == nil {
		return nil, errors.New("handler: Importer is required")
	}
	logger := zerolog.Nop()
	if cfg.Logger != nil {
		logger = *cfg.Logger
	}
	return &Handler{importer: cfg.Importer, logger: logger, results: cfg.Results}, nil
}

// ProcessTask implements asynq.Handler.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	taskID, _ := asynq.GetTaskID(ctx)
	retry, _ := asynq.GetRetryCount(ctx)
	log := h.logger.With().Str("task_id", taskID).Int("retry", retry).Logger()

	p, err := DecodePayload(t.Payload())
	if err != nil {
		// A payload no attempt can fix: archive it now, with the reason as
		// its last error, and go on with the queue.
		log.Error().Err(err).Msg("payload rejected")
		return fmt.Errorf("payload rejected: %w: %w", err, asynq.SkipRetry)
	}
	log = log.With().Str("out_request_no", p.OutRequestNo).Str("card_id", p.CardID).Logger()

	req := wechatpay.ImportRequest{CardID: p.CardID, OpenID: p.OpenID, Code: p.Code, OutRequestNo: p.OutRequestNo}
	start := time.Now()
	res, err := h.importWithin(ctx, req)
	duration := time.Since(start)
	if err == nil {
		log.Info().Str("outcome", string(OutcomeImported)).Str("request_id", res.RequestID).Dur("duration", duration).Msg("import done")
		return h.writeResult(ctx, t, log, Result{Outcome: OutcomeImported, Code: res.Code})
	}

	var deferred *DeferredError
	var werr *wechatpay.Error
	isDeferred, called := errors.As(err, &deferred), errors.As(err, &werr)
	if isDeferred && !called {
		// Held back before WeChat saw it (circuit open, no room in the
		// shared rate): the breaker logs its state changes once for the
		// fleet, so each deferral is only worth a debug line.
		log.Debug().Str("outcome", "deferred").Str("reason", deferred.Reason).Dur("duration", duration).Msg("import deferred")
		return err
	}
	kind := wechatpay.KindOf(err)
	level, msg, ret := decide(ctx, kind, err)
	if isDeferred {
		// WeChat answered, but with the fault the circuit breaker stands
		// for (a rejected signature, an outage): logged as such, and
		// retried with the probes without spending the budget.
		ret = err
		if kind == wechatpay.KindTransient {
			level, msg = zerolog.WarnLevel, "import failed, will retry"
		}
	}
	ev := log.WithLevel(level).Str("outcome", kind.String()).Dur("duration", duration)
	if called {
		ev = ev.Int("http_status", werr.StatusCode).Str("wechat_code", werr.Code).Str("request_id", werr.RequestID)
	}
	if kind != wechatpay.KindAlreadyMember {
		ev = ev.Err(err)
	}
	ev.Msg(msg)
	if kind == wechatpay.KindAlreadyMember {
		return h.writeResult(ctx, t, log, Result{Outcome: OutcomeAlreadyMember})
	}
	return ret
}

// decide maps the kind of a failed import to its log level and message and
// to what the handler returns to asynq.
func decide(ctx context.Context, kind wechatpay.Kind, err error) (zerolog.Level, string, error) {
	switch kind {
	case wechatpay.KindAlreadyMember:
		return zerolog.InfoLevel, "import done", nil
	case wechatpay.KindPermanent:
		return zerolog.WarnLevel, "import refused", fmt.Errorf("import refused: %w: %w", err, asynq.SkipRetry)
	case wechatpay.KindSystemic:
		// Every task fails the same way until an operator acts: loud, with
		// the hint in the error, and no retry spent (IsFailure).
		return zerolog.ErrorLevel, "wechat pay refuses our signature", fmt.Errorf("import: %w", err)
	case wechatpay.KindRateLimited:
		return zerolog.WarnLevel, "import rate limited, will retry", fmt.Errorf("import: %w", err)
	}
	if budgetSpent(ctx) {
		return zerolog.ErrorLevel, "import failed, retries exhausted", fmt.Errorf("import: retries exhausted: %w: %w", err, asynq.SkipRetry)
	}
	return zerolog.WarnLevel, "import failed, will retry", fmt.Errorf("import: %w", err)
}

// writeResult stores r as the task's result; when Redis does not take it,
// it logs so and returns the DeferredError that retries the task.
func (h *Handler) writeResult(ctx context.Context, t *asynq.Task, log zerolog.Logger, r Result) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	switch {
	case h.results != nil:
		id, _ := asynq.GetTaskID(ctx)
		err = h.results.WriteResult(ctx, id, data)
	case t.ResultWriter() != nil:
		_, err = t.ResultWriter().Write(data)
	}
	if err != nil {
		// The import happened but Redis did not take the result: the
		// task is retried, WeChat answers the retry with the same
		// result, and the member's budget is not spent on a fault that
		// was never WeChat's.
		log.Warn().Err(err).Msg("result not written, will retry")
		return &DeferredError{Reason: DeferRedis, RetryAfter: time.Second, Err: fmt.Errorf("write result: %w", err)}
	}
	return nil
}

// budgetSpent reports whether the task has used its retry budget for
// transient faults. The handler, not asynq, enforces that budget: asynq's
// MaxRetry is one more (see NewImportTask), so asynq's own rule of
// archiving any error once retries run out is never reached, and a rate
// limit, a systemic fault or a worker crash can never archive a member.
func budgetSpent(ctx context.Context) bool {
	retried, ok1 := asynq.GetRetryCount(ctx)
	maxRetry, ok2 := asynq.GetMaxRetry(ctx)
	return ok1 && ok2 && retried >= maxRetry-reservedRetries
}

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
//
// Every retry sends the same out_request_no, so WeChat returns the first
// result again instead of importing twice.
type Handler struct {
	importer Importer
	logger   zerolog.Logger
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
	return &Handler{importer: cfg.Importer, logger: logger}, nil
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
	res, err := h.importer.Import(ctx, req)
	for lastAttempt(ctx) && !IsFailure(err) && err != nil && pause(ctx, inPlaceDelay(err)) {
		// asynq archives any error on a task's last attempt, even one that
		// IsFailure says is not the task's fault. So on that attempt a rate
		// limit or a systemic fault is waited out here, for as long as the
		// attempt may last, instead of being returned.
		log.Warn().Str("outcome", wechatpay.KindOf(err).String()).Msg("last attempt waits in place")
		res, err = h.importer.Import(ctx, req)
	}
	duration := time.Since(start)
	if err == nil {
		log.Info().Str("outcome", string(OutcomeImported)).Str("request_id", res.RequestID).Dur("duration", duration).Msg("import done")
		return writeResult(t, Result{Outcome: OutcomeImported, Code: res.Code})
	}

	var werr *wechatpay.Error
	errors.As(err, &werr)
	kind := wechatpay.KindOf(err)
	ev := logEvent(log, kind).Str("outcome", kind.String()).Dur("duration", duration)
	if werr != nil {
		ev = ev.Int("http_status", werr.StatusCode).Str("wechat_code", werr.Code).Str("request_id", werr.RequestID)
	}
	switch kind {
	case wechatpay.KindAlreadyMember:
		ev.Msg("import done")
		return writeResult(t, Result{Outcome: OutcomeAlreadyMember})
	case wechatpay.KindPermanent:
		ev.Err(err).Msg("import refused")
		return fmt.Errorf("import refused: %w: %w", err, asynq.SkipRetry)
	case wechatpay.KindSystemic:
		ev.Err(err).Msg("wechat pay refuses our signature")
		return fmt.Errorf("import: %w", err)
	default:
		if lastAttempt(ctx) {
			// asynq archives the task when this returns.
			log.Error().Str("outcome", kind.String()).Dur("duration", duration).Err(err).Msg("import failed, retries exhausted")
			return fmt.Errorf("import: retries exhausted: %w", err)
		}
		ev.Err(err).Msg("import failed, will retry")
		return fmt.Errorf("import: %w", err)
	}
}

func logEvent(log zerolog.Logger, kind wechatpay.Kind) *zerolog.Event {
	switch kind {
	case wechatpay.KindAlreadyMember:
		return log.Info()
	case wechatpay.KindPermanent, wechatpay.KindTransient, wechatpay.KindRateLimited:
		return log.Warn()
	}
	return log.Error()
}

func writeResult(t *asynq.Task, r Result) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	if w := t.ResultWriter(); w != nil {
		if _, err := w.Write(data); err != nil {
			// The import happened; failing here retries it, and WeChat
			// answers the retry with the same result.
			return fmt.Errorf("write result: %w", err)
		}
	}
	return nil
}

// lastAttempt reports whether asynq will archive the task on any error.
func lastAttempt(ctx context.Context) bool {
	retried, ok1 := asynq.GetRetryCount(ctx)
	maxRetry, ok2 := asynq.GetMaxRetry(ctx)
	return ok1 && ok2 && retried >= maxRetry
}

// inPlaceDelay is how long a last attempt waits before calling again.
func inPlaceDelay(err error) time.Duration {
	if wechatpay.KindOf(err) == wechatpay.KindRateLimited {
		return jitter(rateLimitedDelay)
	}
	return jitter(systemicInPlaceDelay)
}

// pause waits d, and reports false when the attempt's deadline would pass
// before the next call could finish, or ctx ends.
func pause(ctx context.Context, d time.Duration) bool {
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d+wechatpay.DefaultHTTPTimeout {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

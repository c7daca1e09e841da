package importer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/cardimport/cardimport/internal/wechatpay"
	"github.com/cardimport/cardimport/tasks"
)

// Importer makes the calls to WeChat Pay an import needs: the import, and
// the list of a member's cards that confirms an already-member.
// *wechatpay.Client is the production implementation; the guard and the
// metrics wrap it.
type Importer interface {
	Import(ctx context.Context, req wechatpay.ImportRequest) (wechatpay.ImportResult, error)
	wechatpay.CardLister
}

// HandlerConfig configures a Handler.
type HandlerConfig struct {
	// Importer calls WeChat. Required.
	Importer Importer
	// Logger receives one line per attempt. Defaults to a logger that
	// discards everything.
	Logger *zerolog.Logger
	// Results, when set, settles each finished import in place of the
	// task's own asynq ResultWriter. The worker passes its dead-letter
	// store, which in one Redis round trip writes the result, drops the
	// member's dead letter on success, appends the outcome to the queue's
	// results stream and counts it in the member's run.
	Results ResultStore
	// Observer, when set, is told how each attempt that reached WeChat
	// ended (the worker's metrics). Defaults to none.
	Observer Observer
}

// AttemptOutcome is how one attempt that reached WeChat ended: "imported",
// "already_member", or the name of the wechatpay.Kind of its error.
type AttemptOutcome string

// Observer is told how each attempt that reached WeChat ended, with WeChat's
// error code when there was one. Attempts held back before WeChat saw them
// (DeferredError without an answer) are not observed.
type Observer interface {
	ObserveAttempt(outcome AttemptOutcome, wechatCode string)
}

// ResultStore settles a finished import: its tasks.Result (imported,
// already_member, or dead) under the task's ID (its out_request_no), for the
// member p. An error retries the task without spending its budget, as a
// result asynq could not write does.
type ResultStore interface {
	Settle(ctx context.Context, taskID string, p tasks.Payload, r tasks.Result) error
}

// Handler processes tasks.TypeImport tasks. It maps the kind of WeChat's answer to
// what asynq should do with the task:
//
//	imported        → done, result {"outcome":"imported","code":…}
//	refused 400 INVALID_REQUEST, and WeChat's list of the member's cards
//	  shows the card → done, result {"outcome":"already_member","code":…}
//	permanent       → archived at once (asynq.SkipRetry) with the reason
//	unverified      → retried with backoff, counted (never settled on)
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
	observer Observer
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
	return &Handler{importer: cfg.Importer, logger: logger, results: cfg.Results, observer: cfg.Observer}, nil
}

// ProcessTask implements asynq.Handler.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	taskID, hasID := asynq.GetTaskID(ctx)
	retry, _ := asynq.GetRetryCount(ctx)
	log := h.logger.With().Str("task_id", taskID).Int("retry", retry).Logger()

	p, err := tasks.DecodePayload(t.Payload())
	if err == nil && hasID && taskID != p.OutRequestNo {
		// The task ID is the import's idempotency key: a task under another
		// ID could import the member twice, or under a number WeChat never
		// sees again.
		err = fmt.Errorf("%w: task id is not the payload's out_request_no", tasks.ErrInvalidPayload)
	}
	if err != nil {
		// A payload no attempt can fix: archive it now, with the reason as
		// its last error, and go on with the queue.
		log.Error().Err(err).Msg("payload rejected")
		return h.settleFailure(ctx, t, log, leniently(t.Payload()), fmt.Errorf("payload rejected: %w: %w", err, asynq.SkipRetry))
	}
	log = log.With().Str("out_request_no", p.OutRequestNo).Str("card_id", p.CardID).Logger()

	req := wechatpay.ImportRequest{CardID: p.CardID, OpenID: p.OpenID, Code: p.Code, OutRequestNo: p.OutRequestNo}
	start := time.Now()
	done, err := h.importWithin(ctx, req)
	duration := time.Since(start)
	if err == nil {
		h.observe(AttemptOutcome(done.Outcome), "")
		log.Info().Str("outcome", string(done.Outcome)).Str("request_id", done.requestID).Dur("duration", duration).Msg("import done")
		return h.writeResult(ctx, t, log, p, done.Result)
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
	var code string
	if called {
		code = werr.Code
	}
	h.observe(AttemptOutcome(kind.String()), code)
	level, msg, ret := decide(ctx, kind, err)
	if isDeferred {
		// WeChat answered, but with the fault the circuit breaker stands
		// for (a rejected signature, an outage, answers that do not
		// verify): logged as such, and retried with the probes without
		// spending the budget.
		ret = err
		if kind != wechatpay.KindSystemic {
			level, msg = zerolog.WarnLevel, "import failed, will retry"
		}
	}
	ev := log.WithLevel(level).Str("outcome", kind.String()).Dur("duration", duration)
	if called {
		ev = ev.Int("http_status", werr.StatusCode).Str("wechat_code", werr.Code).Str("request_id", werr.RequestID)
	}
	ev.Err(err).Msg(msg)
	return h.settleFailure(ctx, t, log, p, ret)
}

// settleFailure writes the dead outcome of a task that failed for good
// (ret wraps asynq.SkipRetry) as its result, so the reason and WeChat's
// answer stay with the task in typed form (FailureResult) for whoever reads
// it later: `enqueue status`, the dead-letter sweep. When Redis does not
// take it, the task is retried without spending its budget, as for a
// result of an import.
func (h *Handler) settleFailure(ctx context.Context, t *asynq.Task, log zerolog.Logger, p tasks.Payload, ret error) error {
	if !errors.Is(ret, asynq.SkipRetry) {
		return ret
	}
	if err := h.settle(ctx, t, p, FailureResult(ret)); err != nil {
		log.Warn().Err(err).Msg("dead outcome not written, will retry")
		return &DeferredError{Reason: DeferRedis, RetryAfter: time.Second, Err: fmt.Errorf("write result: %w", err)}
	}
	return ret
}

// settle records r through the ResultStore, or as the task's asynq result
// when there is none.
func (h *Handler) settle(ctx context.Context, t *asynq.Task, p tasks.Payload, r tasks.Result) error {
	if h.results != nil {
		id, _ := asynq.GetTaskID(ctx)
		return h.results.Settle(ctx, id, p, r)
	}
	if t.ResultWriter() == nil {
		return nil
	}
	data, err := json.Marshal(r)
	if err == nil {
		_, err = t.ResultWriter().Write(data)
	}
	return err
}

// leniently decodes what it can of a payload the handler rejected, so its
// dead outcome still names its card and run.
func leniently(data []byte) tasks.Payload {
	var p tasks.Payload
	_ = json.Unmarshal(data, &p)
	return p
}

func (h *Handler) observe(outcome AttemptOutcome, code string) {
	if h.observer != nil {
		h.observer.ObserveAttempt(outcome, code)
	}
}

// settled is an import that ended well, and how.
type settled struct {
	tasks.Result
	requestID string
}

// attempt makes the calls of one attempt and settles what they show. An
// import WeChat refused with a verified 400 INVALID_REQUEST may be a member
// who already holds the card (a retry after a lost answer meets that too);
// WeChat documents no message for it, so the evidence is WeChat's own list
// of the member's cards: listed, the member is done with the listed code;
// not listed, the refusal stands; the list not had, the attempt's outcome
// stays unknown and it is retried.
func (h *Handler) attempt(ctx context.Context, req wechatpay.ImportRequest) (settled, error) {
	res, err := h.importer.Import(ctx, req)
	if err == nil {
		return settled{Result: tasks.Result{Outcome: tasks.OutcomeImported, Code: res.Code}, requestID: res.RequestID}, nil
	}
	var werr *wechatpay.Error
	if !errors.As(err, &werr) || !werr.AsksForCardCheck() {
		return settled{}, err
	}
	held, lerr := wechatpay.FindCard(ctx, h.importer, req.OpenID, req.CardID)
	switch {
	case lerr != nil:
		return settled{}, lerr
	case held.Held:
		return settled{Result: tasks.Result{Outcome: tasks.OutcomeAlreadyMember, Code: held.Code}, requestID: held.RequestID}, nil
	}
	return settled{}, err
}

// decide maps the kind of a failed import to its log level and message and
// to what the handler returns to asynq.
func decide(ctx context.Context, kind wechatpay.Kind, err error) (zerolog.Level, string, error) {
	switch kind {
	case wechatpay.KindPermanent:
		return zerolog.WarnLevel, "import refused", Refused(err)
	case wechatpay.KindSystemic:
		// Every task fails the same way until an operator acts: loud, with
		// the hint in the error, and no retry spent (IsFailure).
		return zerolog.ErrorLevel, "wechat pay refuses our signature", fmt.Errorf("import: %w", err)
	case wechatpay.KindRateLimited:
		return zerolog.WarnLevel, "import rate limited, will retry", fmt.Errorf("import: %w", err)
	}
	if budgetSpent(ctx) {
		return zerolog.ErrorLevel, "import failed, retries exhausted", Exhausted(err)
	}
	return zerolog.WarnLevel, "import failed, will retry", fmt.Errorf("import: %w", err)
}

// Refused is the error the handler gives asynq for an import WeChat refused
// for good: asynq archives the task at once. Its text is for people (the
// task's last error); what the member's outcome is, readers take from the
// task's result or, failing that, from the typed error it wraps.
func Refused(err error) error { return fmt.Errorf("import refused: %w: %w", err, asynq.SkipRetry) }

// Exhausted is the error the handler gives asynq for a transient fault that
// outlasted the retry budget: asynq archives the task at once.
func Exhausted(err error) error {
	return fmt.Errorf("import: retries exhausted: %w: %w", err, asynq.SkipRetry)
}

// writeResult settles r, the result of an import; when Redis does not take
// it, it logs so and returns the DeferredError that retries the task.
func (h *Handler) writeResult(ctx context.Context, t *asynq.Task, log zerolog.Logger, p tasks.Payload, r tasks.Result) error {
	if err := h.settle(ctx, t, p, r); err != nil {
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
	return ok1 && ok2 && retried >= tasks.RetryBudget(maxRetry)
}

var _ asynq.Handler = (*Handler)(nil)

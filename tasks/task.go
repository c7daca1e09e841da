package tasks

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// DefaultQueue is the asynq queue imports go to unless WithQueue says
// otherwise.
const DefaultQueue = "membercard"

// Defaults of the task options. Each can be changed per task with an Option.
const (
	// DefaultMaxRetry bounds how often a transient fault (5xx, timeout,
	// network error, forged answer) is retried before the task is archived.
	// With the default backoff (2 s doubling to 10 min, jittered) 20
	// retries span about 1 h 35 min on average and at most 2 h 07 min:
	// longer than WeChat's incidents usually last, short enough that a
	// member whose import keeps failing is set aside the same day. Rate
	// limits, systemic faults and worker crashes never spend this budget.
	DefaultMaxRetry = 20
	// DefaultTimeout bounds one attempt. It is well above MinTimeout so
	// that an attempt can wait for the shared rate limit and still end with
	// WeChat's answer, not with the call cut short.
	DefaultTimeout = 60 * time.Second
	// DefaultRetention keeps a finished task and its result (the card code)
	// in Redis for three days, so that `enqueue status` can answer for a
	// nightly import over a weekend, and re-enqueueing the same
	// out_request_no within that window is reported as a duplicate. Each
	// retained task costs roughly half a kilobyte of Redis memory.
	DefaultRetention = 72 * time.Hour
)

// MinTimeout is the shortest attempt timeout WithTimeout accepts: what a
// worker needs to fit one call to WeChat Pay that fails over to the backup
// host (a 5 s dial, then a 15 s call, and a second of bookkeeping), its
// 2 s margin before asynq's own deadline, and 5 s to wait for the shared
// rate limit. A shorter attempt would be cut short mid-call. The worker's
// figures are in internal/importer, whose tests keep the two equal.
const MinTimeout = 28 * time.Second

// reservedRetries is added to the budget in the task's asynq MaxRetry.
// asynq archives a task on any error once its retries run out, even an
// error IsFailure does not count; the handler archives a transient fault
// itself when the budget is spent, so asynq's limit is never reached and
// rate limits, systemic faults and worker crashes never archive a member.
const reservedRetries = 1

// RetryBudget returns the retry budget for transient faults of a task
// whose asynq MaxRetry is maxRetry, i.e. what WithMaxRetry set: asynq's
// count includes the reserved retry.
func RetryBudget(maxRetry int) int { return max(maxRetry-reservedRetries, 0) }

// options are the asynq options an import task is created with.
type options struct {
	queue     string
	maxRetry  int
	timeout   time.Duration
	retention time.Duration
}

// Option changes how NewImportTask creates a task.
type Option func(*options)

// WithQueue puts the task into the named queue. Defaults to DefaultQueue.
func WithQueue(name string) Option { return func(o *options) { o.queue = name } }

// WithMaxRetry sets the retry budget for transient faults. Defaults to
// DefaultMaxRetry.
func WithMaxRetry(n int) Option { return func(o *options) { o.maxRetry = n } }

// WithTimeout bounds one attempt. Defaults to DefaultTimeout; at least
// MinTimeout.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithRetention sets how long a finished task and its result are kept.
// Defaults to DefaultRetention.
func WithRetention(d time.Duration) Option { return func(o *options) { o.retention = d } }

// OptionError reports a task option out of its range.
type OptionError struct {
	// Option names the option as a producer configures it: "queue",
	// "max-retry", "timeout" or "retention".
	Option string
	// Problem says what is wrong with its value.
	Problem string
}

func (e *OptionError) Error() string { return e.Option + ": " + e.Problem }

// ValidateOptions checks options before any task is built, so a producer
// can refuse bad configuration once, up front, as an *OptionError.
func ValidateOptions(opts ...Option) error {
	_, err := buildOptions(opts)
	return err
}

func buildOptions(opts []Option) (options, error) {
	o := options{queue: DefaultQueue, maxRetry: DefaultMaxRetry, timeout: DefaultTimeout, retention: DefaultRetention}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case o.queue == "":
		return o, &OptionError{Option: "queue", Problem: "must not be empty"}
	case o.maxRetry < 0:
		return o, &OptionError{Option: "max-retry", Problem: fmt.Sprintf("must not be negative, got %d", o.maxRetry)}
	case o.timeout <= 0:
		return o, &OptionError{Option: "timeout", Problem: fmt.Sprintf("must be positive, got %s", o.timeout)}
	case o.timeout < MinTimeout:
		// Shorter attempts are cut short before a call to WeChat can end.
		return o, &OptionError{Option: "timeout", Problem: fmt.Sprintf("must be at least %s to fit a call to WeChat Pay, got %s", MinTimeout, o.timeout)}
	case o.retention < 0:
		return o, &OptionError{Option: "retention", Problem: fmt.Sprintf("must not be negative, got %s", o.retention)}
	}
	return o, nil
}

// NewImportTask validates p and returns the asynq task that imports it, with
// its task ID set to p.OutRequestNo.
func NewImportTask(p Payload, opts ...Option) (*asynq.Task, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	return newTask(p, o)
}

// newTask builds the task of a validated payload with built options.
func newTask(p Payload, o options) (*asynq.Task, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode payload: %w", err)
	}
	return asynq.NewTask(TypeImport, data,
		asynq.TaskID(p.OutRequestNo),
		asynq.Queue(o.queue),
		asynq.MaxRetry(o.maxRetry+reservedRetries),
		asynq.Timeout(o.timeout),
		asynq.Retention(o.retention),
	), nil
}

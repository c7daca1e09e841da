package tasks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hibiken/asynq"
	"golang.org/x/sync/errgroup"

	"github.com/cardimport/cardimport/results"
)

// DefaultProducerConcurrency is how many enqueues EnqueueMany keeps in
// flight at once. Each enqueue is one Redis round trip, so a handful hide
// the latency; more only add load on the Redis the workers share.
const DefaultProducerConcurrency = 16

// ErrNotAttempted is the error of the members of a batch that EnqueueMany
// did not try to enqueue because an earlier enqueue failed (Redis went
// away) or its context was cancelled. Sending them again is safe.
var ErrNotAttempted = errors.New("not attempted: the batch stopped at an earlier failure")

// Producer enqueues member imports: what a Go registration system uses to
// hand over one member as it signs up, or many at once. It is the one place
// where the enqueue CLI and the HTTP intake validate a member and turn a
// repeated out_request_no into a duplicate, so every way in behaves alike.
// A Producer is safe for concurrent use.
type Producer struct {
	client      *asynq.Client
	opts        []Option
	concurrency int
	// built is opts applied, so that a member enqueued without options of
	// its own costs no option building.
	built options
	// runs and run, when set, make every member part of run (WithRun).
	runs *results.Store
	run  string
}

// ProducerOption changes how NewProducer builds a Producer.
type ProducerOption func(*Producer)

// WithTaskOptions sets the options of every task the Producer creates
// (queue, retry budget, timeout, retention). Options given to Enqueue or
// EnqueueMany come after them and win. Defaults to none: DefaultQueue and
// the default budget, timeout and retention.
func WithTaskOptions(opts ...Option) ProducerOption {
	return func(p *Producer) { p.opts = append(p.opts, opts...) }
}

// WithConcurrency sets how many enqueues EnqueueMany keeps in flight.
// Defaults to DefaultProducerConcurrency.
func WithConcurrency(n int) ProducerOption {
	return func(p *Producer) { p.concurrency = n }
}

// WithRun makes every member the Producer enqueues part of run id: its
// payload names the run (unless it names one itself), and the run's counts
// in rs, the results of the Producer's queue, take what the Producer did
// (enqueued, duplicates, invalid). Call CloseRun once every member of the
// run was handed over: the run settles when none is left waiting. Defaults
// to no run.
func WithRun(rs *results.Store, id string) ProducerOption {
	return func(p *Producer) { p.runs, p.run = rs, id }
}

// NewProducer returns a Producer that enqueues through client, which stays
// the caller's to close. Task options out of range are refused here, as an
// *OptionError, rather than at the first member.
func NewProducer(client *asynq.Client, opts ...ProducerOption) (*Producer, error) {
	p := &Producer{client: client, concurrency: DefaultProducerConcurrency}
	for _, opt := range opts {
		opt(p)
	}
	if p.concurrency < 1 {
		return nil, &OptionError{Option: "concurrency", Problem: fmt.Sprintf("must be at least 1, got %d", p.concurrency)}
	}
	var err error
	if p.built, err = buildOptions(p.opts); err != nil {
		return nil, err
	}
	if p.run != "" || p.runs != nil {
		return p.InRun(p.runs, p.run)
	}
	return p, nil
}

// InRun returns a Producer like p that enqueues into run id, counted in rs,
// as WithRun does: a server taking batches for many runs keeps one Producer
// and takes one of these per batch.
func (p *Producer) InRun(rs *results.Store, id string) (*Producer, error) {
	cp := *p
	cp.runs, cp.run = rs, id
	if rs == nil {
		return nil, &OptionError{Option: "run", Problem: "needs the results store of the queue"}
	}
	if rs.Queue() != cp.built.queue {
		return nil, &OptionError{Option: "run", Problem: fmt.Sprintf("results store is of queue %q, tasks go to %q", rs.Queue(), cp.built.queue)}
	}
	if err := results.ValidateRunID(id); err != nil {
		return nil, &OptionError{Option: "run", Problem: strings.TrimPrefix(err.Error(), results.ErrInvalidRunID.Error()+": run: ")}
	}
	return &cp, nil
}

// Run returns the run the Producer enqueues into, "" for none.
func (p *Producer) Run() string { return p.run }

// CloseRun says every member of the Producer's run was handed over; the
// run settles once none is left waiting. A no-op without a run.
func (p *Producer) CloseRun(ctx context.Context) error {
	if p.runs == nil {
		return nil
	}
	return p.runs.CloseRun(ctx, p.run)
}

// inRun puts member into the Producer's run.
func (p *Producer) inRun(member Payload) Payload {
	if p.run != "" && member.Run == "" {
		member.Run = p.run
	}
	return member
}

// startRun opens the Producer's run before members go in.
func (p *Producer) startRun(ctx context.Context) error {
	if p.runs == nil {
		return nil
	}
	return p.runs.StartRun(ctx, p.run)
}

// countRun adds what a call did to the run's counts.
func (p *Producer) countRun(ctx context.Context, enqueued, duplicates, invalid int64) error {
	if p.runs == nil {
		return nil
	}
	return p.runs.CountEnqueued(ctx, p.run, enqueued, duplicates, invalid)
}

// Ping checks that Redis answers.
func (p *Producer) Ping() error { return p.client.Ping() }

// Enqueue validates member and puts its import into the queue. An invalid
// member is an error matching ErrInvalidPayload (a *FieldError naming the
// field). duplicate is true, with a nil error, when a task with the same
// out_request_no (the task ID) is still in Redis — waiting, running,
// retrying, archived, or finished within its retention: the member was
// handed over before, and importing it twice is what the ID prevents, so a
// repeat is not a failure. Any other error is a failure to reach the queue;
// trying again later is safe.
func (p *Producer) Enqueue(ctx context.Context, member Payload, opts ...Option) (duplicate bool, err error) {
	o, err := p.taskOptions(opts)
	if err != nil {
		return false, err
	}
	member = p.inRun(member)
	if err := p.startRun(ctx); err != nil {
		return false, err
	}
	if err := member.Validate(); err != nil {
		return false, errors.Join(err, p.countRun(ctx, 0, 0, 1))
	}
	duplicate, err = p.enqueue(ctx, member, o)
	switch {
	case err != nil:
		return false, err
	case duplicate:
		return true, p.countRun(ctx, 0, 1, 0)
	}
	return false, p.countRun(ctx, 1, 0, 0)
}

// taskOptions returns the Producer's task options with opts applied after
// them: the ones built by NewProducer when there are none.
func (p *Producer) taskOptions(opts []Option) (options, error) {
	if len(opts) == 0 {
		return p.built, nil
	}
	return buildOptions(append(append([]Option(nil), p.opts...), opts...))
}

// enqueue puts the import of a validated member into the queue with built
// options; see Enqueue for what it returns.
func (p *Producer) enqueue(ctx context.Context, member Payload, o options) (duplicate bool, err error) {
	task, err := newTask(member, o)
	if err != nil {
		return false, err
	}
	_, err = p.client.EnqueueContext(ctx, task)
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, asynq.ErrTaskIDConflict), errors.Is(err, asynq.ErrDuplicateTask):
		return true, nil
	}
	return false, fmt.Errorf("enqueue task: %w", err)
}

// EnqueueResult is what EnqueueMany did with one member of a batch.
type EnqueueResult struct {
	// Index is the member's position in the batch.
	Index int
	// Duplicate says the member was not enqueued because its out_request_no
	// is already queued, or appears earlier in the same batch.
	Duplicate bool
	// Err is nil when the member was enqueued or is a duplicate. It matches
	// ErrInvalidPayload for an invalid member and ErrNotAttempted for one
	// left out after a failure; otherwise the enqueue itself failed.
	Err error
}

// EnqueueMany enqueues a batch of members concurrently and returns one
// EnqueueResult per member, in the batch's order. Invalid members are
// refused and the valid ones still go in. When the same out_request_no appears more than
// once, the first is enqueued and the others are duplicates, whatever the
// timing. The error is the first failure to reach the queue (or ctx's
// error); after it no further member is tried and those left carry
// ErrNotAttempted, so sending the whole batch again is safe: what went in
// comes back as duplicates.
func (p *Producer) EnqueueMany(ctx context.Context, members []Payload, opts ...Option) ([]EnqueueResult, error) {
	res, err := p.enqueueMany(ctx, members, opts)
	if p.runs == nil || errors.Is(err, errRunNotStarted) {
		return res, err
	}
	var enqueued, duplicates, invalid int64
	for _, r := range res {
		switch {
		case r.Duplicate:
			duplicates++
		case r.Err == nil:
			enqueued++
		case errors.Is(r.Err, ErrInvalidPayload):
			invalid++
		}
	}
	if cerr := p.countRun(ctx, enqueued, duplicates, invalid); cerr != nil && err == nil {
		err = cerr
	}
	return res, err
}

// errRunNotStarted marks a batch refused because its run could not be
// opened: nothing was tried, so nothing is counted.
var errRunNotStarted = errors.New("run not started")

func (p *Producer) enqueueMany(ctx context.Context, members []Payload, opts []Option) ([]EnqueueResult, error) {
	results := make([]EnqueueResult, len(members))
	if err := p.startRun(ctx); err != nil {
		for i := range results {
			results[i] = EnqueueResult{Index: i, Err: ErrNotAttempted}
		}
		return results, fmt.Errorf("%w: %w", errRunNotStarted, err)
	}
	if p.run != "" {
		// The caller's slice stays as it was given.
		members = slices.Clone(members)
		for i := range members {
			members[i] = p.inRun(members[i])
		}
	}
	todo := make([]int, 0, len(members))
	seen := make(map[string]struct{}, len(members))
	for i, m := range members {
		results[i].Index = i
		if err := m.Validate(); err != nil {
			results[i].Err = err
			continue
		}
		if _, ok := seen[m.OutRequestNo]; ok {
			results[i].Duplicate = true
			continue
		}
		seen[m.OutRequestNo] = struct{}{}
		todo = append(todo, i)
	}

	// Built once for the batch, and its members validated above: each
	// enqueue below is only the round trip to Redis. Options out of range
	// fail each member taken, as Enqueue would.
	o, optErr := p.taskOptions(opts)

	// stopped ends at the first failure: no member is begun after it. The
	// enqueues themselves run on ctx, so one in flight ends as it would.
	pool, stopped := errgroup.WithContext(ctx)
	pool.SetLimit(p.concurrency)
	next := 0
	for ; next < len(todo) && stopped.Err() == nil; next++ {
		i := todo[next]
		pool.Go(func() error {
			if stopped.Err() != nil {
				results[i].Err = ErrNotAttempted
				return nil
			}
			dup, err := false, optErr
			if err == nil {
				dup, err = p.enqueue(ctx, members[i], o)
			}
			results[i].Duplicate, results[i].Err = dup, err
			if err != nil {
				return fmt.Errorf("member %d: %w", i, err)
			}
			return nil
		})
	}
	err := pool.Wait()
	for _, i := range todo[next:] {
		results[i].Err = ErrNotAttempted
	}
	if err == nil {
		// Stopped, if at all, by ctx rather than by a member.
		err = ctx.Err()
	}
	return results, err
}

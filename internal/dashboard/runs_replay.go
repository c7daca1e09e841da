package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/cardimport/cardimport/internal/deadletter"
)

// replayConcurrency is how many replays are in flight at once: each is a
// few Redis round trips, which a handful in flight hide (as `enqueue dead
// replay` does).
const replayConcurrency = 4

// replayCounts is what a Replay press did, in `enqueue dead replay`'s
// words.
type replayCounts struct {
	mu                        sync.Mutex
	replayed, skipped, failed int
}

func (c *replayCounts) String() string {
	return fmt.Sprintf("replayed=%d skipped=%d failed=%d", c.replayed, c.skipped, c.failed)
}

// replay puts one refusal group's members back into the queue, as `enqueue
// dead replay` does with their dead letters, and redirects to the run's
// page, which says what it did.
func (p *runsPage) replay(w http.ResponseWriter, r *http.Request) {
	if p.readOnly {
		// asynqmon's answer to a change in read-only mode, for the same
		// switch.
		p.fail(w, http.StatusMethodNotAllowed, "The dashboard is read-only (--dashboard-read-only): nothing can be replayed from it.", nil)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		p.fail(w, http.StatusBadRequest, "The replay form could not be read.", nil)
		return
	}
	if !csrfValid(r) {
		p.fail(w, http.StatusForbidden, "This Replay form is stale or did not come from this dashboard: reload the run's page and press Replay again.", nil)
		return
	}
	run, ok := p.readRun(w, r)
	if !ok {
		return
	}
	ctx, cancel := requestContext(r)
	defer cancel()
	groups, err := p.refusals(ctx, run)
	if err != nil {
		p.fail(w, http.StatusInternalServerError, "The run's outcomes could not be read from Redis.", err)
		return
	}
	key := r.PostForm.Get("group")
	back := p.href("/runs/" + url.PathEscape(run.ID))
	g := refusalByKey(groups, key)
	if g == nil {
		// Its members have all ended otherwise since the page was drawn.
		http.Redirect(w, r, back+"?"+url.Values{"gone": {"1"}}.Encode(), http.StatusSeeOther)
		return
	}
	counts, err := p.replayGroup(ctx, g)
	ev := p.log.Info()
	if err != nil {
		ev = p.log.Error().Err(err)
	}
	ev.Str("run", run.ID).Str("wechat_code", g.WeChatCode).Str("reason", g.Reason).
		Int("replayed", counts.replayed).Int("skipped", counts.skipped).Int("failed", counts.failed).
		Msg("dashboard replay")
	if err != nil {
		p.fail(w, http.StatusInternalServerError, "The replay stopped part-way ("+counts.String()+"); pressing Replay again is safe.", err)
		return
	}
	q := url.Values{"group": {g.Key}, "replayed": {strconv.Itoa(counts.replayed)},
		"skipped": {strconv.Itoa(counts.skipped)}, "failed": {strconv.Itoa(counts.failed)}}
	http.Redirect(w, r, back+"?"+q.Encode(), http.StatusSeeOther)
}

// replayGroup replays the dead letters of g's members. It first reconciles
// the store with asynq's archive, as `enqueue dead replay` does, so a
// member asynq archived out of the worker's sight has its letter. A member
// whose letter is gone (its import succeeded since) or whose import is in
// flight again is skipped; one whose payload cannot be replayed is failed.
// It returns the first error that is not a member's own (Redis).
func (p *runsPage) replayGroup(ctx context.Context, g *refusal) (*replayCounts, error) {
	counts := &replayCounts{}
	if _, err := p.dead.Sweep(ctx); err != nil {
		return counts, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan string)
	var wg sync.WaitGroup
	for range replayConcurrency {
		wg.Go(func() {
			for no := range jobs {
				if err := p.replayOne(ctx, no, counts); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for _, no := range g.Members {
		select {
		case jobs <- no:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	return counts, context.Cause(ctx)
}

func (p *runsPage) replayOne(ctx context.Context, no string, counts *replayCounts) error {
	rec, err := p.dead.Get(ctx, no)
	var out deadletter.ReplayOutcome
	if err == nil {
		out, err = p.dead.Replay(ctx, rec, false)
	}
	counts.mu.Lock()
	defer counts.mu.Unlock()
	switch {
	case errors.Is(err, deadletter.ErrNotFound):
		counts.skipped++
	case errors.Is(err, deadletter.ErrNotReplayable):
		counts.failed++
	case err != nil:
		return fmt.Errorf("out_request_no=%s: %w", no, err)
	case out == deadletter.Replayed:
		counts.replayed++
	default:
		counts.skipped++
	}
	return nil
}

// flash is the line the run's page shows after a Replay press.
type flash struct {
	Gone                      bool
	Group                     string
	Replayed, Skipped, Failed int
}

func (f *flash) Counts() string {
	return fmt.Sprintf("replayed=%d skipped=%d failed=%d", f.Replayed, f.Skipped, f.Failed)
}

// flashOf reads the flash from the redirect's query, or nil.
func flashOf(r *http.Request, groups []*refusal) *flash {
	q := r.URL.Query()
	if q.Get("gone") != "" {
		return &flash{Gone: true}
	}
	if !q.Has("replayed") {
		return nil
	}
	n := func(k string) int { v, _ := strconv.Atoi(q.Get(k)); return max(v, 0) }
	f := &flash{Replayed: n("replayed"), Skipped: n("skipped"), Failed: n("failed")}
	if g := refusalByKey(groups, q.Get("group")); g != nil {
		f.Group = g.Label()
	}
	return f
}

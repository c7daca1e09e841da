package dashboard

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"time"

	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/results"
)

// refusal is one group of a run's dead members: those refused with the
// same WeChat code and message (or, without a WeChat answer, for the same
// reason and message), which one fix and one Replay usually settle.
type refusal struct {
	// Key names the group in a Replay form: a hash, since a message may
	// be long and hold anything.
	Key        string
	Reason     string
	HTTPStatus int
	WeChatCode string
	Message    string
	Count      int64
	// InQueue counts the members replayed since, back in the queue and
	// not finished yet.
	InQueue int64
	// Members are the group's out_request_nos, oldest outcome first.
	Members []string
	// Examples are the first few, linked to their story.
	Examples []string
}

// Replayable says whether a replay can help: a payload that is not a
// valid import fails the same way however often it is put back; it needs
// a corrected enqueue.
func (g *refusal) Replayable() bool {
	return g.Reason != string(deadletter.ReasonInvalidPayload)
}

// ToReplay counts the members a Replay would put back.
func (g *refusal) ToReplay() int64 { return g.Count - g.InQueue }

// Label is the group's name in one word: WeChat's code, or the reason.
func (g *refusal) Label() string {
	if g.WeChatCode != "" {
		return g.WeChatCode
	}
	return g.Reason
}

// examplesShown is how many out_request_nos a group lists.
const examplesShown = 5

// clockSkew is the margin taken when dead letters' failure times, from the
// workers' clocks, are compared with a run's start, from Redis's.
const clockSkew = 10 * time.Minute

func refusalKey(reason, code, message string) string {
	sum := sha256.Sum256([]byte(reason + "\x00" + code + "\x00" + message))
	return hex.EncodeToString(sum[:12])
}

// refusals groups the dead members of run, by the latest outcome of each
// (a member replayed and imported since is no longer dead), largest group
// first, and counts those back in the queue. It reads the run's index of
// its dead members, and the dead letters from the run's start on; a run
// settled before there was an index is read from the outcome stream, from
// its start on.
func (p *runsPage) refusals(ctx context.Context, run results.Run) ([]*refusal, error) {
	byKey := map[string]*refusal{}
	byMember := map[string]*refusal{}
	var groups []*refusal
	group := func(e results.Event) error {
		if e.Outcome != results.OutcomeDead {
			return nil
		}
		key := refusalKey(e.Reason, e.WeChatCode, e.Message)
		g := byKey[key]
		if g == nil {
			g = &refusal{Key: key, Reason: e.Reason, HTTPStatus: e.HTTPStatus, WeChatCode: e.WeChatCode, Message: e.Message}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.Count++
		g.Members = append(g.Members, e.OutRequestNo)
		byMember[e.OutRequestNo] = g
		if len(g.Examples) < examplesShown {
			g.Examples = append(g.Examples, e.OutRequestNo)
		}
		return nil
	}
	indexed, err := p.results.DeadOf(ctx, run.ID, group)
	if err == nil && !indexed && run.Dead > 0 {
		err = p.results.Export(ctx, results.Filter{Run: run.ID, Since: run.StartedAt}, group)
	}
	if err != nil {
		return nil, err
	}
	if len(groups) > 0 {
		for rec, err := range p.dead.List(ctx, deadletter.Filter{Since: run.StartedAt.Add(-clockSkew)}) {
			if err != nil {
				return nil, err
			}
			if g := byMember[rec.OutRequestNo]; g != nil && rec.State == deadletter.StateReplayed {
				g.InQueue++
			}
		}
	}
	slices.SortStableFunc(groups, func(a, b *refusal) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Label(), b.Label()))
	})
	return groups, nil
}

// refusalByKey returns the group of key, or nil.
func refusalByKey(groups []*refusal, key string) *refusal {
	for _, g := range groups {
		if g.Key == key {
			return g
		}
	}
	return nil
}

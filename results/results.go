// Package results is where a registration system learns what became of
// the members it handed over: every import belongs to a run, whose counts
// are kept in Redis, and every final outcome (imported with its card code,
// already a member with the code WeChat lists, dead with WeChat's code and
// message, and a later replay's outcome) is appended to a Redis Stream per
// queue, kept for a retention window (RESULTS_RETENTION, 30 days by
// default) and trimmed by time. No openid is ever written there: the
// registration system knows its member by out_request_no.
//
// Read it three ways: Store.Export streams the latest outcome of every
// out_request_no (optionally of one run, or since a time); Store.Page pages
// through them with a cursor (the HTTP intake's GET /v1/results); Follow
// reads the stream through a consumer group and acknowledges each event only
// after the callback returned, so a follower killed mid-way and started
// again with the same names gets every unacknowledged event again.
//
// Every key of a queue carries the queue in braces, as asynq's own keys do,
// so on Redis Cluster they share the queue's hash slot and one script may
// touch them all.
package results

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// DefaultRetention is how long outcomes and runs are kept: a month covers a
// registration system that reads its results weekly, and a nightly import's
// run stays visible across holidays.
const DefaultRetention = 30 * 24 * time.Hour

// Outcomes of an event, as in tasks.Result.
const (
	OutcomeImported      = "imported"
	OutcomeAlreadyMember = "already_member"
	OutcomeDead          = "dead"
)

// Event is one final outcome of one member's import.
type Event struct {
	// ID is the stream entry's ID; it orders events and is the cursor.
	ID           string `json:"id"`
	OutRequestNo string `json:"out_request_no"`
	CardID       string `json:"card_id"`
	Run          string `json:"run,omitempty"`
	// Outcome is imported, already_member or dead.
	Outcome string `json:"outcome"`
	// Code is the member's card code (imported, already_member).
	Code string `json:"code,omitempty"`
	// Reason, HTTPStatus, WeChatCode and Message say why a dead import is
	// dead (see tasks.Result).
	Reason     string    `json:"reason,omitempty"`
	HTTPStatus int       `json:"http_status,omitempty"`
	WeChatCode string    `json:"wechat_code,omitempty"`
	Message    string    `json:"message,omitempty"`
	FinishedAt time.Time `json:"finished_at"`
}

// fields is the event as stream entry fields.
func (e Event) fields() []any {
	return []any{
		"out_request_no", e.OutRequestNo, "card_id", e.CardID, "run", e.Run,
		"outcome", e.Outcome, "code", e.Code, "reason", e.Reason,
		"http_status", strconv.Itoa(e.HTTPStatus), "wechat_code", e.WeChatCode,
		"message", e.Message,
	}
}

// DecodeEvent decodes an entry of the outcome stream (StreamKey), as
// XREADGROUP returns it, for readers of their own.
func DecodeEvent(id string, values map[string]any) Event { return eventFrom(id, values) }

// DecodeSettlement decodes an entry of the run events stream
// (RunEventsKey): the run as it settled.
func DecodeSettlement(values map[string]any) Run {
	h := make(map[string]string, len(values))
	for k, v := range values {
		h[k], _ = v.(string)
	}
	r := decodeRun(h["run"], h)
	// A run settles only once its producer closed it.
	r.Closed = true
	return r
}

// eventFrom decodes a stream entry.
func eventFrom(id string, v map[string]any) Event {
	s := func(k string) string { x, _ := v[k].(string); return x }
	status, _ := strconv.Atoi(s("http_status"))
	return Event{
		ID: id, OutRequestNo: s("out_request_no"), CardID: s("card_id"), Run: s("run"),
		Outcome: s("outcome"), Code: s("code"), Reason: s("reason"), HTTPStatus: status,
		WeChatCode: s("wechat_code"), Message: s("message"), FinishedAt: idTime(id),
	}
}

// EntryTime is when a stream entry of this package was added: the
// milliseconds part of its ID ("1764840000123-0"); zero for another string.
func EntryTime(id string) time.Time { return idTime(id) }

// idTime is the time of a stream entry ID (its milliseconds part).
func idTime(id string) time.Time {
	for i := 0; i < len(id); i++ {
		if id[i] == '-' {
			ms, err := strconv.ParseInt(id[:i], 10, 64)
			if err != nil {
				return time.Time{}
			}
			return time.UnixMilli(ms).UTC()
		}
	}
	return time.Time{}
}

// keys are the Redis keys of one queue's results.
type keys struct {
	stream     string // the outcome events
	superseded string // zset: IDs of events a later outcome replaced, by time
	deadEvents string // hash: out_request_no → ID of its dead event, while dead
	pruned     string // string with a TTL: the dead events were pruned lately
	runs       string // zset: run IDs by start time
	runPrefix  string // hash per run: its counts
	runDead    string // hash per run: out_request_no → ID of its dead event
	runReplays string // set per run: out_request_nos replayed, not settled yet
	runEvents  string // stream: each run's settlement
}

func newKeys(queue string) keys {
	p := "cardimport:{" + queue + "}:"
	return keys{stream: p + "results", superseded: p + "results:superseded", deadEvents: p + "results:dead", pruned: p + "results:dead:pruned",
		runs: p + "runs", runPrefix: p + "run:", runDead: p + "run-dead:", runReplays: p + "run-replays:", runEvents: p + "runs:settled"}
}

// RunEventsKey is the Redis Stream of queue's run settlements: one entry
// each time a run settles, with its counts (run, enqueued, duplicates,
// invalid, imported, already_member, dead, started_at and settled_at in
// Unix milliseconds).
func RunEventsKey(queue string) string { return newKeys(queue).runEvents }

// StreamKey is the Redis Stream of queue's outcomes, for readers in other
// languages (XREADGROUP on it; every field is a string).
func StreamKey(queue string) string { return newKeys(queue).stream }

// runIDPattern is what a run ID may hold: it becomes part of a Redis key and
// a URL path, and is printed to terminals.
var runIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$`)

// ErrInvalidRunID is matched by the error of a run ID ValidateRunID refuses.
var ErrInvalidRunID = errors.New("invalid run id")

// ValidateRunID checks a run ID: 1 to 64 of letters, digits and _ . : -,
// starting with a letter or digit.
func ValidateRunID(id string) error {
	if !runIDPattern.MatchString(id) {
		return fmt.Errorf("%w: run: must be 1 to 64 letters, digits, '_', '.', ':' or '-', starting with a letter or digit", ErrInvalidRunID)
	}
	return nil
}

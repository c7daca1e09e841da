package deadletter

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cardimport/cardimport/internal/importer"
	"github.com/cardimport/cardimport/internal/logging"
	"github.com/cardimport/cardimport/tasks"
)

// Reason says why an import ended as a dead letter.
type Reason string

const (
	// ReasonPermanent: WeChat refused the member for good (400, 403, 404)
	// in an answer it signed; the record carries WeChat's status, code,
	// message and request id.
	ReasonPermanent Reason = tasks.ReasonPermanent
	// ReasonRetriesExhausted: a transient fault (5xx, timeout, network, an
	// answer that did not verify) outlasted the retry budget.
	ReasonRetriesExhausted Reason = tasks.ReasonRetriesExhausted
	// ReasonInvalidPayload: the task's payload is not a valid import; a
	// replay cannot fix it, a corrected enqueue can.
	ReasonInvalidPayload Reason = tasks.ReasonInvalidPayload
	// ReasonArchivedByAsynq: asynq archived the task without the worker's
	// error handler seeing it, e.g. a lease that expired on the task's last
	// retry, or an operator's "archive" on the dashboard. Found by the sweep.
	ReasonArchivedByAsynq Reason = "archived_by_asynq"
)

// State is where a dead letter stands.
type State string

const (
	// StateDead: the import failed and nothing has been done about it.
	StateDead State = "dead"
	// StateReplayed: the task was put back (ReplayedAt) and has not
	// finished yet. A success removes the record; another failure makes it
	// dead again.
	StateReplayed State = "replayed"
)

// Record is one dead letter. Its JSON form is what `enqueue dead list
// --json` prints: it has the openid masked and never the payload.
type Record struct {
	OutRequestNo string `json:"out_request_no"`
	CardID       string `json:"card_id"`
	OpenIDMasked string `json:"openid_masked"`
	// Payload is the task payload as enqueued, openid included, kept to
	// replay the import. Never printed.
	Payload       []byte    `json:"-"`
	Reason        Reason    `json:"reason"`
	HTTPStatus    int       `json:"http_status,omitempty"`
	WeChatCode    string    `json:"wechat_code,omitempty"`
	Message       string    `json:"message"`
	RequestID     string    `json:"request_id,omitempty"`
	Attempts      int       `json:"attempts"`
	FirstFailedAt time.Time `json:"first_failed_at"`
	LastFailedAt  time.Time `json:"last_failed_at"`
	State         State     `json:"state"`
	Replays       int       `json:"replays"`
	ReplayedAt    time.Time `json:"replayed_at,omitzero"`
}

// FromFailure builds the record of a task that asynq is about to archive
// after the handler (or asynq) failed it with err. taskID is the task's ID,
// which is its out_request_no; attempts counts this run's attempts.
func FromFailure(taskID string, payload []byte, attempts int, err error, at time.Time) Record {
	r := newRecord(taskID, payload, at)
	r.Attempts = attempts
	r.fill(importer.FailureResult(err))
	return r
}

// fill takes the reason and WeChat's answer from the task's typed outcome.
func (r *Record) fill(res tasks.Result) {
	r.Reason = Reason(res.Reason)
	r.HTTPStatus, r.WeChatCode, r.RequestID = res.HTTPStatus, res.WeChatCode, res.RequestID
	r.Message = MaskPayloadOpenID(r.Payload, res.Message)
}

// FromArchived builds the record of a task found in asynq's archive
// without one. The handler writes the dead outcome of every task it fails
// for good as the task's result (importer.FailureResult); a task archived
// without one never got there (asynq's recoverer, an operator's "archive"),
// and keeps its last error as the message.
func FromArchived(info *asynq.TaskInfo) Record {
	r := newRecord(info.ID, info.Payload, info.LastFailedAt)
	r.Attempts = info.Retried + 1
	if res, err := tasks.DecodeResult(info.Result); err == nil && res.Outcome == tasks.OutcomeDead {
		r.fill(res)
		return r
	}
	r.Reason = ReasonArchivedByAsynq
	msg := strings.TrimSuffix(info.LastErr, ": "+asynq.SkipRetry.Error())
	if msg == "" {
		msg = "archived without an error (an operator's archive?)"
	}
	r.Message = MaskPayloadOpenID(info.Payload, msg)
	return r
}

// deadResult is the dead outcome a record stands for.
func (r Record) deadResult() tasks.Result {
	return tasks.Result{Outcome: tasks.OutcomeDead, Reason: string(r.Reason), HTTPStatus: r.HTTPStatus,
		WeChatCode: r.WeChatCode, RequestID: r.RequestID, Message: r.Message}
}

// leniently decodes what it can of a task's payload.
func leniently(payload []byte) tasks.Payload {
	var p tasks.Payload
	_ = json.Unmarshal(payload, &p)
	return p
}

func newRecord(taskID string, payload []byte, at time.Time) Record {
	if at.IsZero() {
		at = time.Now()
	}
	r := Record{OutRequestNo: taskID, Payload: payload, FirstFailedAt: at, LastFailedAt: at, State: StateDead}
	// Lenient on purpose: a payload the handler rejected still shows
	// whatever card and openid it has.
	var p tasks.Payload
	if json.Unmarshal(payload, &p) == nil {
		r.CardID = p.CardID
		r.OpenIDMasked = logging.MaskOpenID(p.OpenID)
	}
	return r
}

// MaskPayloadOpenIDOf masks p's openid in s.
func MaskPayloadOpenIDOf(p tasks.Payload, s string) string {
	return logging.MaskOpenIDIn(s, p.OpenID)
}

// MaskPayloadOpenID masks, in s, the openid of the import payload: a
// task's last error is shown next to its payload, and must not show the
// openid should an error ever quote it.
func MaskPayloadOpenID(payload []byte, s string) string {
	var p tasks.Payload
	if json.Unmarshal(payload, &p) == nil {
		s = logging.MaskOpenIDIn(s, p.OpenID)
	}
	return s
}

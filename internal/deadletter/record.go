package deadletter

import (
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cardimport/cardimport/internal/logging"
	"github.com/cardimport/cardimport/internal/wechatpay"
	"github.com/cardimport/cardimport/tasks"
)

// Reason says why an import ended as a dead letter.
type Reason string

const (
	// ReasonPermanent: WeChat refused the member for good (400, 403, 404);
	// the record carries WeChat's status, code, message and request id.
	ReasonPermanent Reason = "permanent"
	// ReasonRetriesExhausted: a transient fault (5xx, timeout, network)
	// outlasted the retry budget.
	ReasonRetriesExhausted Reason = "retries_exhausted"
	// ReasonInvalidPayload: the task's payload is not a valid import; a
	// replay cannot fix it, a corrected enqueue can.
	ReasonInvalidPayload Reason = "invalid_payload"
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
	var werr *wechatpay.Error
	switch {
	case errors.Is(err, tasks.ErrInvalidPayload):
		r.Reason = ReasonInvalidPayload
	case errors.As(err, &werr):
		r.Reason = ReasonRetriesExhausted
		if werr.Kind == wechatpay.KindPermanent {
			r.Reason = ReasonPermanent
		}
		r.HTTPStatus, r.WeChatCode, r.RequestID = werr.StatusCode, werr.Code, werr.RequestID
	default:
		r.Reason = ReasonRetriesExhausted
	}
	r.Message = MaskPayloadOpenID(payload, describe(err, werr))
	return r
}

// describe is the message of a record: WeChat's own message for a WeChat
// answer (the status, code and request id have their own fields), else the
// error's text without asynq's control-flow suffix.
func describe(err error, werr *wechatpay.Error) string {
	if werr != nil && werr.Message != "" {
		msg := werr.Message
		if werr.Field != "" {
			msg += " (field " + werr.Field + ")"
		}
		return msg
	}
	return strings.TrimSuffix(err.Error(), ": "+asynq.SkipRetry.Error())
}

// FromArchived builds the record of a task found in asynq's archive
// without one, reading what it can from the task's last error: the
// handler's errors name the WeChat status, code, message and request id.
func FromArchived(info *asynq.TaskInfo) Record {
	r := newRecord(info.ID, info.Payload, info.LastFailedAt)
	r.Attempts = info.Retried + 1
	msg := strings.TrimSuffix(info.LastErr, ": "+asynq.SkipRetry.Error())
	switch {
	case strings.HasPrefix(msg, "payload rejected: "):
		r.Reason = ReasonInvalidPayload
	case strings.HasPrefix(msg, "import refused: "):
		r.Reason = ReasonPermanent
	case strings.HasPrefix(msg, "import: retries exhausted: "):
		r.Reason = ReasonRetriesExhausted
	default:
		r.Reason = ReasonArchivedByAsynq
	}
	if e, ok := parseWeChatError(msg); ok {
		r.HTTPStatus, r.WeChatCode, r.RequestID = e.StatusCode, e.Code, e.RequestID
		msg = e.Message
	}
	if msg == "" {
		msg = "archived without an error (an operator's archive?)"
	}
	r.Message = MaskPayloadOpenID(info.Payload, msg)
	return r
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

// wechatErrorText matches the text of a *wechatpay.Error inside a task's
// last error: "wechat pay KIND: http STATUS[ CODE][: MESSAGE][ [request_id ID]]".
var wechatErrorText = regexp.MustCompile(`wechat pay [a-z_]+: http (\d{3})(?: ([A-Z0-9_]+))?(?:: (.*?))?(?: \[request_id ([^\]]+)\])?(?:; hint: .*)?$`)

// parseWeChatError reads a WeChat answer back from the text of an error.
func parseWeChatError(s string) (wechatpay.Error, bool) {
	m := wechatErrorText.FindStringSubmatch(s)
	if m == nil {
		return wechatpay.Error{}, false
	}
	status, _ := strconv.Atoi(m[1])
	return wechatpay.Error{StatusCode: status, Code: m[2], Message: m[3], RequestID: m[4]}, true
}

package testkit

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
)

// waitPoll is how often WaitState asks for the task.
const waitPoll = 20 * time.Millisecond

// WaitState polls task id of queue through insp until it is in state, and
// returns what asynq holds of it then. If it is not within the given time,
// it fails tb, naming the task, the state wanted and the last state (with
// the retries spent and the task's last error) or the last error seen; logs,
// if given (e.g. a worker's *Buffer), are printed with the failure, as what
// the test's processes said meanwhile.
func WaitState(tb testing.TB, insp *asynq.Inspector, queue, id string, state asynq.TaskState, within time.Duration, logs ...fmt.Stringer) *asynq.TaskInfo {
	tb.Helper()
	deadline := time.Now().Add(within)
	var (
		last    *asynq.TaskInfo
		lastErr error
	)
	for {
		info, err := insp.GetTaskInfo(queue, id)
		if err == nil && info.State == state {
			return info
		}
		if err == nil {
			last, lastErr = info, nil
		} else {
			lastErr = err
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(waitPoll)
	}
	var seen string
	switch {
	case lastErr != nil && last != nil:
		seen = fmt.Sprintf("last: %v (before that, state %s, retried %d, last error %q)", lastErr, last.State, last.Retried, last.LastErr)
	case lastErr != nil:
		seen = fmt.Sprintf("last: %v", lastErr)
	default:
		seen = fmt.Sprintf("last: state %s, retried %d, last error %q", last.State, last.Retried, last.LastErr)
	}
	var out strings.Builder
	for _, l := range logs {
		out.WriteString("\n")
		out.WriteString(l.String())
	}
	tb.Fatalf("task %s in queue %s: not %s within %s (%s)%s", id, queue, state, within, seen, out.String())
	return nil
}

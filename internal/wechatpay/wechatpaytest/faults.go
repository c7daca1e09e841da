package wechatpaytest

import (
	"crypto/sha256"
	"encoding/binary"
	"net/http"
	"time"
)

// faults are the failures scheduled by a test. Guarded by Emulator.mu.
type faults struct {
	outage    *answer
	failures  []scheduledFailure
	accept202 int
	lose      int
	forge     int
}

// scheduledFailure is one FailNext call, answered until remaining runs out.
type scheduledFailure struct {
	remaining int
	answer    answer
}

// take spends one of a counter's scheduled faults.
func (f *faults) take(counter *int) bool {
	if *counter <= 0 {
		return false
	}
	*counter--
	return true
}

// takeFailure spends one FailNext answer, oldest call first.
func (f *faults) takeFailure() (answer, bool) {
	for len(f.failures) > 0 {
		next := &f.failures[0]
		if next.remaining > 0 {
			next.remaining--
			return next.answer, true
		}
		f.failures = f.failures[1:]
	}
	return answer{}, false
}

// FailNext answers the next n import calls that pass the rate limit and the
// signature check with the given HTTP status and WeChat error, importing
// nothing. Calls queue up: FailNext(1, 500, …) then FailNext(1, 503, …)
// answers 500 first, then 503.
func (e *Emulator) FailNext(n int, status int, code, message string) {
	if n <= 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults.failures = append(e.faults.failures, scheduledFailure{remaining: n, answer: refusal(status, code, message)})
}

// SetOutage answers every later import call that passes the rate limit and
// the signature check with status and SERVICE_UNAVAILABLE (SYSTEM_ERROR for
// a 500), importing nothing, until SetOutage(0) ends the outage. It stands
// for WeChat being down for a while, however many calls arrive.
func (e *Emulator) SetOutage(status int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case status == 0:
		e.faults.outage = nil
	case status == http.StatusInternalServerError:
		a := refusal(status, "SYSTEM_ERROR", "系统错误 (outage)")
		e.faults.outage = &a
	default:
		a := refusal(status, "SERVICE_UNAVAILABLE", "服务不可用 (outage)")
		e.faults.outage = &a
	}
}

// LoseNextAnswers performs the next n imports but answers each with
// 500 SYSTEM_ERROR, as if the answer were lost on the way back. A retry
// under the same out_request_no then meets the replay of the import, which
// is what the worker's idempotency rests on.
func (e *Emulator) LoseNextAnswers(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults.lose += max(n, 0)
}

// ForgeNext breaks the signature of the next n 2xx answers of the import
// endpoint (new imports, replays and 202s alike): the signature is made
// with the right key over other bytes and starts with "WECHATPAY/SIGNTEST/",
// like the probes WeChat sends to find clients that do not verify. The
// import itself is carried out.
func (e *Emulator) ForgeNext(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults.forge += max(n, 0)
}

// Accept202Next answers the next n import calls that pass the rate limit
// and the signature check with 202 Accepted and an empty, signed body,
// importing nothing: WeChat took the call but has not finished, and the
// caller must retry with the same parameters.
func (e *Emulator) Accept202Next(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults.accept202 += max(n, 0)
}

// SetLatency delays every later answer to /v3/… by d; 0 removes the delay.
func (e *Emulator) SetLatency(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.latency = d
}

// firstAttemptFault reports whether this is the first attempt of an
// out_request_no chosen by WithFirstAttemptFaults. Called with e.mu held.
func (e *Emulator) firstAttemptFault(outRequestNo string) bool {
	if e.firstAttemptFaults <= 0 || e.members.attempted[outRequestNo] {
		return false
	}
	e.members.attempted[outRequestNo] = true
	return chosen(outRequestNo, e.firstAttemptFaults)
}

// chosen hashes s to a number in [0, 1) and compares it with share, so the
// same out_request_nos fail in every run. SHA-256 rather than FNV: numbers
// like "…-000001", "…-000002" differ only in their last bytes, and FNV's
// high bits do not spread those evenly.
func chosen(s string, share float64) bool {
	sum := sha256.Sum256([]byte(s))
	return float64(binary.BigEndian.Uint64(sum[:8])>>11)/(1<<53) < share
}

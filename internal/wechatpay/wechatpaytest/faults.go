package wechatpaytest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
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
	// intercepts are ForgeRefusalNext and RedirectNext answers, in the
	// order they were scheduled.
	intercepts []scheduledFailure
	// interceptFor are ForgeRefusalFor and RedirectFor answers, each
	// spent by the next import call under its out_request_no.
	interceptFor map[string][]answer
	// listFailures and listForge are FailNextList and ForgeNextList.
	listFailures []scheduledFailure
	listForge    int
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

// takeQueued spends one answer of a queue of scheduled ones (FailNext,
// ForgeRefusalNext, …), oldest call first.
func takeQueued(queue *[]scheduledFailure) (answer, bool) {
	for len(*queue) > 0 {
		next := &(*queue)[0]
		if next.remaining > 0 {
			next.remaining--
			return next.answer, true
		}
		*queue = (*queue)[1:]
	}
	return answer{}, false
}

// takeIntercept spends the answer a stand-in on the path gives an import
// call instead of WeChat: one scheduled for its out_request_no first, then
// one of ForgeRefusalNext and RedirectNext. The body is decoded only when
// some out_request_no has one scheduled, so load runs do not pay for it.
func (f *faults) takeIntercept(body []byte) (answer, bool) {
	if len(f.interceptFor) > 0 {
		var req struct {
			OutRequestNo string `json:"out_request_no"`
		}
		if json.Unmarshal(body, &req) == nil {
			if queue := f.interceptFor[req.OutRequestNo]; len(queue) > 0 {
				if len(queue) == 1 {
					delete(f.interceptFor, req.OutRequestNo)
				} else {
					f.interceptFor[req.OutRequestNo] = queue[1:]
				}
				return queue[0], true
			}
		}
	}
	return takeQueued(&f.intercepts)
}

// forgedRefusal is an error answer no one signed.
func forgedRefusal(status int, code, message string) answer {
	if status < 400 || status > 599 {
		panic(fmt.Sprintf("wechatpaytest: a forged refusal needs a 4xx or 5xx status, got %d", status))
	}
	a := refusal(status, code, message)
	a.intercepted = true
	return a
}

// redirect is a 3xx answer to location, which WeChat never gives.
func redirect(status int, location string) answer {
	if status < 300 || status > 399 {
		panic(fmt.Sprintf("wechatpaytest: a redirect needs a 3xx status, got %d", status))
	}
	return answer{status: status, intercepted: true, location: location}
}

// scheduleFor queues an intercepted answer for the next import call under
// outRequestNo.
func (e *Emulator) scheduleFor(outRequestNo string, a answer) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.faults.interceptFor == nil {
		e.faults.interceptFor = map[string][]answer{}
	}
	e.faults.interceptFor[outRequestNo] = append(e.faults.interceptFor[outRequestNo], a)
}

// scheduleNext queues answer a for the next n calls of queue; n <= 0
// queues nothing.
func (e *Emulator) scheduleNext(queue *[]scheduledFailure, n int, a answer) {
	if n <= 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	*queue = append(*queue, scheduledFailure{remaining: n, answer: a})
}

// ForgeRefusalNext answers the next n import calls that pass the rate limit
// and the signature check with an error answer WeChat did not give: status
// (4xx or 5xx; it panics otherwise) and the JSON body {"code","message"},
// without any Wechatpay-* header or Request-ID, importing nothing. It
// stands for a proxy or a tampering middlebox answering in WeChat's place,
// e.g. a forged 400 INVALID_REQUEST MessageAlreadyMember or a 404 NOT_FOUND
// that a client must not take as final. It comes before every other fault
// and rule: the call never reached WeChat. ForgeRefusalNext and
// RedirectNext share one queue, answered in the order they were called.
func (e *Emulator) ForgeRefusalNext(n int, status int, code, message string) {
	e.scheduleNext(&e.faults.intercepts, n, forgedRefusal(status, code, message))
}

// ForgeRefusalFor gives the next import call under outRequestNo (its first
// attempt, when called before the task runs) the forged, unsigned answer
// ForgeRefusalNext describes; later attempts reach WeChat. Calls for one
// number queue up, one attempt each. It comes before ForgeRefusalNext and
// RedirectNext.
func (e *Emulator) ForgeRefusalFor(outRequestNo string, status int, code, message string) {
	e.scheduleFor(outRequestNo, forgedRefusal(status, code, message))
}

// RedirectNext answers the next n import calls that pass the rate limit and
// the signature check with status (3xx; it panics otherwise) and a
// Location header naming location, with an empty body and no Wechatpay-*
// header, importing nothing. WeChat never redirects an API call: a client
// that follows would send the signed request, the openid and the
// Authorization header to location. Shares its queue with ForgeRefusalNext.
func (e *Emulator) RedirectNext(n int, status int, location string) {
	e.scheduleNext(&e.faults.intercepts, n, redirect(status, location))
}

// RedirectFor gives the next import call under outRequestNo the redirect
// RedirectNext describes; later attempts reach WeChat. It queues with
// ForgeRefusalFor for the same number.
func (e *Emulator) RedirectFor(outRequestNo string, status int, location string) {
	e.scheduleFor(outRequestNo, redirect(status, location))
}

// FailNextList answers the next n list calls that pass the rate limit and
// the signature check with the given HTTP status and WeChat error, signed
// as WeChat signs its errors. Import calls are not affected, nor are list
// calls affected by FailNext.
func (e *Emulator) FailNextList(n int, status int, code, message string) {
	e.scheduleNext(&e.faults.listFailures, n, refusal(status, code, message))
}

// ForgeNextList breaks the signature of the next n 200 answers of the list
// call, as ForgeNext does for imports: a client that verifies must not take
// the list as evidence.
func (e *Emulator) ForgeNextList(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults.listForge += max(n, 0)
}

// FailNext answers the next n import calls that pass the rate limit and the
// signature check with the given HTTP status and WeChat error, signed as
// WeChat signs its errors, importing nothing; list calls are not affected
// (FailNextList). Calls queue up: FailNext(1, 500, …) then FailNext(1, 503, …)
// answers 500 first, then 503.
func (e *Emulator) FailNext(n int, status int, code, message string) {
	e.scheduleNext(&e.faults.failures, n, refusal(status, code, message))
}

// SetOutage answers every later import and list call that passes the rate
// limit and the signature check with status and SERVICE_UNAVAILABLE
// (SYSTEM_ERROR for a 500), signed, importing nothing, until SetOutage(0)
// ends the outage. It stands for WeChat being down for a while, however
// many calls arrive. GET /v3/certificates is not affected.
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

package wechatpaytest

import (
	"encoding/json"
	"maps"
	"net/http"
	"time"
)

// Stats counts what the emulator did.
type Stats struct {
	// Requests is every request but GET /stats, whatever its answer.
	Requests int `json:"requests"`
	// Imports is how many members were newly imported, including those
	// whose answer LoseNextAnswers dropped or ForgeNext forged.
	Imports int `json:"imports"`
	// Replays is how many repeated out_request_nos were answered with their
	// first import again.
	Replays int `json:"replays"`
	// Members is how many distinct members were imported (Seed excluded).
	Members int `json:"members"`
	// Refusals counts WeChat's error answers by code: SIGN_ERROR,
	// RATELIMIT_EXCEEDED, SYSTEM_ERROR, PARAM_ERROR, INVALID_REQUEST, …
	// Forged refusals and redirects are not WeChat's and not counted here.
	Refusals map[string]int `json:"refusals"`
	// Lists is how many list calls (GET …/user/cards) passed the rate
	// limit and the signature check, whatever their answer.
	Lists int `json:"lists"`
	// ForgedRefusals is how many unsigned error answers ForgeRefusalNext
	// and ForgeRefusalFor gave in WeChat's place.
	ForgedRefusals int `json:"forged_refusals"`
	// Redirects is how many 3xx answers RedirectNext and RedirectFor gave.
	Redirects int `json:"redirects"`
	// CertificateDownloads is how many times GET /v3/certificates was
	// answered with the certificates (see Emulator.CertificateDownloads).
	CertificateDownloads int `json:"certificate_downloads"`
	// PlatformRotations is how many times RotatePlatformCertificate made a
	// new platform certificate.
	PlatformRotations int `json:"platform_rotations"`
}

// Stats returns a snapshot of the counters.
func (e *Emulator) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.Members = len(e.members.imports)
	s.Refusals = maps.Clone(e.stats.Refusals)
	return s
}

// Admitted reports how many /v3/ requests passed the rate limit, whatever
// their answer, and when the first and the last of them arrived, so that a
// load test can work out the rate it achieved: (n-1) / last.Sub(first).
func (e *Emulator) Admitted() (n int, first, last time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.admitted.n, e.admitted.first, e.admitted.last
}

// ImportCount returns how many times a member was newly imported. Whatever
// retries, lost answers and forged signatures an import went through, it
// must end at exactly 1.
func (e *Emulator) ImportCount(cardID, openid string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.members.imports[memberKey{cardID: cardID, openID: openid}]
}

// Failures returns how many verified import calls under outRequestNo did
// not end in a 2xx answer their caller received: 5xx and 202 answers,
// refusals, forged refusals and redirects, and answers written after the
// caller had hung up. A worker that
// counts only WeChat's failures against a task's retries never shows more
// retries for a task than this; a crash, a Redis restart or a wait for the
// rate limit must not add any.
func (e *Emulator) Failures(outRequestNo string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.members.failures[outRequestNo]
}

// Members returns how many distinct members were imported, seeded members
// excluded.
func (e *Emulator) Members() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.members.imports)
}

// handleStats serves Stats as JSON, unsigned and without authorization, so
// that a sandbox run can be checked from outside the process.
func (e *Emulator) handleStats(w http.ResponseWriter, _ *http.Request) {
	body, err := json.Marshal(e.Stats())
	if err != nil {
		http.Error(w, "encode stats: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// Package webhook tells the registration system about outcomes by pushing
// them: each member's final outcome and each run's settlement, POSTed as
// JSON to WEBHOOK_URL and signed the way Stripe and GitHub sign theirs.
//
// The worker's handler never waits for a receiver: outcomes and
// settlements are already in Redis Streams (package results). A relay in
// each worker reads them through a consumer group and turns each into an
// asynq task of the webhook queue (its task ID is the event's ID, so a
// relay that restarts does not queue an event twice), and a server of its
// own, with its own small concurrency, delivers them: a receiver that is
// down or slow holds webhook tasks back, never imports. Delivery is retried
// with backoff for up to a day; what still fails is archived by asynq (the
// webhook queue's dead letters), shown by `enqueue webhooks` and replayed
// from there or the dashboard. 2xx means delivered; every event carries an
// ID, so a receiver drops repeats (delivery is at least once).
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cardimport/cardimport/internal/wechatpay"
)

// SignatureHeader carries the signature: t=UNIX_SECONDS,v1=HEX, where HEX is
// the HMAC-SHA256, under the secret, of the timestamp, a dot and the raw
// body.
const SignatureHeader = "Cardimport-Signature"

// EventIDHeader repeats the event's ID, for receivers that drop repeats
// before reading the body.
const EventIDHeader = "Cardimport-Event-Id"

// MinSecretLen is the shortest WEBHOOK_SECRET accepted: a guessable
// secret lets anyone forge outcomes.
const MinSecretLen = 16

// Tolerance is how old a signature Verify accepts, against replays of a
// captured request.
const Tolerance = 5 * time.Minute

// Config is where events go and the secret they are signed with.
type Config struct {
	// URL is WEBHOOK_URL: https://, or http:// to a loopback host.
	URL string
	// Secret is WEBHOOK_SECRET.
	Secret string
}

// Enabled reports whether webhooks are configured.
func (c Config) Enabled() bool { return c.URL != "" }

// Validate checks the configuration, naming the variable at fault. The
// secret is never quoted.
func (c Config) Validate() error {
	if c.URL == "" && c.Secret == "" {
		return nil
	}
	var errs []error
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		errs = append(errs, errors.New("WEBHOOK_URL: is required with WEBHOOK_SECRET"))
	case err != nil || u.Host == "":
		errs = append(errs, errors.New("WEBHOOK_URL: not an absolute URL"))
	case u.User != nil:
		errs = append(errs, errors.New("WEBHOOK_URL: must not carry a user or password"))
	case u.Scheme == "http" && !wechatpay.IsLoopbackHost(u.Hostname()):
		errs = append(errs, fmt.Errorf("WEBHOOK_URL: must be https:// (http:// only to a loopback host), got host %q", u.Hostname()))
	case u.Scheme != "https" && u.Scheme != "http":
		errs = append(errs, fmt.Errorf("WEBHOOK_URL: scheme must be https, got %q", u.Scheme))
	}
	if len(c.Secret) < MinSecretLen {
		errs = append(errs, fmt.Errorf("WEBHOOK_SECRET: must be at least %d bytes", MinSecretLen))
	}
	return errors.Join(errs...)
}

// Sign returns the SignatureHeader value of body sent at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Errors of Verify.
var (
	ErrNoSignature  = errors.New("webhook: no t= and v1= in the signature header")
	ErrBadSignature = errors.New("webhook: signature does not match")
	ErrTooOld       = errors.New("webhook: signature too old or from the future")
)

// Verify checks a SignatureHeader value against body, as a receiver does:
// the HMAC in constant time, and the timestamp within tolerance of now.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrNoSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrTooOld
	}
	want := mac(secret, ts, body)
	for _, sig := range sigs {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return ErrBadSignature
}

package webhook_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/webhook"
)

const secret = "whsec-0123456789abcdef"

func TestSignAndVerify(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id":"outcome-1-0","type":"import.outcome"}`)
	now := time.Unix(1764800000, 0)
	h := webhook.Sign(secret, now, body)
	require.Regexp(t, `^t=1764800000,v1=[0-9a-f]{64}$`, h)
	require.NoError(t, webhook.Verify(secret, h, body, now.Add(time.Minute), webhook.Tolerance))
	tests := []struct {
		name   string
		header string
		body   string
		now    time.Time
		want   error
	}{
		{name: "another body", header: h, body: `{"id":"outcome-1-0","type":"import.outcomes"}`, now: now, want: webhook.ErrBadSignature},
		{name: "another secret", header: webhook.Sign("another-secret-0123", now, body), body: string(body), now: now, want: webhook.ErrBadSignature},
		{name: "too old", header: h, body: string(body), now: now.Add(webhook.Tolerance + time.Second), want: webhook.ErrTooOld},
		{name: "from the future", header: h, body: string(body), now: now.Add(-webhook.Tolerance - time.Second), want: webhook.ErrTooOld},
		{name: "no header", header: "", body: string(body), now: now, want: webhook.ErrNoSignature},
		{name: "timestamp changed", header: strings.Replace(h, "t=1764800000", "t=1764800001", 1), body: string(body), now: now, want: webhook.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.ErrorIs(t, webhook.Verify(secret, tt.header, []byte(tt.body), tt.now, webhook.Tolerance), tt.want)
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  webhook.Config
		want string
	}{
		{name: "off", cfg: webhook.Config{}},
		{name: "https", cfg: webhook.Config{URL: "https://reg.example.com/hooks", Secret: secret}},
		{name: "http to loopback", cfg: webhook.Config{URL: "http://127.0.0.1:9000/hooks", Secret: secret}},
		{name: "http off loopback", cfg: webhook.Config{URL: "http://reg.example.com/hooks", Secret: secret}, want: `WEBHOOK_URL: must be https:// (http:// only to a loopback host), got host "reg.example.com"`},
		{name: "secret too short", cfg: webhook.Config{URL: "https://reg.example.com/hooks", Secret: "short"}, want: "WEBHOOK_SECRET: must be at least 16 bytes"},
		{name: "secret without URL", cfg: webhook.Config{Secret: secret}, want: "WEBHOOK_URL: is required with WEBHOOK_SECRET"},
		{name: "password in the URL", cfg: webhook.Config{URL: "https://u:p4ss@reg.example.com/", Secret: secret}, want: "WEBHOOK_URL: must not carry a user or password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tt.want)
			require.NotContains(t, err.Error(), "p4ss")
			require.NotContains(t, err.Error(), tt.cfg.Secret)
		})
	}
}

// TestDeliver: 2xx delivers; another status, or a redirect (never
// followed), is an error asynq retries; the request is signed and names
// the event.
func TestDeliver(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(other.Close)
	var status atomic.Int64
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got.Store(webhook.Verify(secret, r.Header.Get(webhook.SignatureHeader), body, time.Now(), webhook.Tolerance) == nil &&
			r.Header.Get(webhook.EventIDHeader) == "outcome-7-0" && r.Header.Get("Content-Type") == "application/json")
		if status.Load() == http.StatusFound {
			w.Header().Set("Location", other.URL)
		}
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(srv.Close)
	var results []string
	d, err := webhook.NewDeliverer(webhook.Config{URL: srv.URL, Secret: secret}, zerolog.Nop(), func(r string, _ time.Duration) { results = append(results, r) })
	require.NoError(t, err)
	ctx := context.Background()
	task := asynq.NewTask(webhook.TypeDeliver, []byte(`{"id":"outcome-7-0"}`))
	for _, tt := range []struct {
		status int
		ok     bool
	}{{200, true}, {204, true}, {503, false}, {400, false}, {http.StatusFound, false}} {
		status.Store(int64(tt.status))
		err := d.ProcessTask(ctx, task)
		if tt.ok {
			require.NoError(t, err, tt.status)
		} else {
			require.Error(t, err, tt.status)
		}
		require.Equal(t, true, got.Load(), "signed, with the event id")
	}
	require.Equal(t, []string{"delivered", "delivered", "refused", "refused", "redirected"}, results)
	require.Zero(t, elsewhere.Load(), "the redirect was followed")

	srv.Close()
	require.Error(t, d.ProcessTask(ctx, task))
	require.Equal(t, "unreachable", results[len(results)-1])
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	total := time.Duration(0)
	for n := range webhook.MaxRetry {
		d := webhook.RetryDelay(n, nil, nil)
		require.GreaterOrEqual(t, d, 5*time.Second)
		require.LessOrEqual(t, d, time.Hour)
		total += d
	}
	// With jitter the retries span half to all of about a day.
	require.Greater(t, total, 11*time.Hour)
	require.Less(t, total, 25*time.Hour)
}

// TestQueueKeepsTheHashTag: asynq's keys of the webhook queue hash like the
// import queue's on Redis Cluster.
func TestQueueKeepsTheHashTag(t *testing.T) {
	t.Parallel()
	key := "asynq:{" + webhook.QueueFor("membercard") + "}:pending"
	open := strings.Index(key, "{")
	closing := strings.Index(key[open:], "}")
	require.Equal(t, "membercard", key[open+1:open+closing])
}

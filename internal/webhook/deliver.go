package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"
)

// DeliveryTimeout bounds one POST: a slow receiver costs a webhook slot
// this long at most, never an import.
const DeliveryTimeout = 10 * time.Second

// Delivery results, the label of the deliveries metric.
const (
	ResultDelivered   = "delivered"
	ResultRefused     = "refused"     // a non-2xx answer
	ResultRedirected  = "redirected"  // a 3xx, not followed
	ResultUnreachable = "unreachable" // no answer: refused connection, timeout
)

// Deliverer POSTs webhook events: an asynq handler of TypeDeliver.
type Deliverer struct {
	cfg     Config
	client  *http.Client
	log     zerolog.Logger
	observe func(result string, d time.Duration)
	now     func() time.Time
}

// NewDeliverer returns the handler that delivers to cfg.URL. observe, when
// not nil, is told each delivery's result and duration (the metrics).
func NewDeliverer(cfg Config, log zerolog.Logger, observe func(result string, d time.Duration)) (*Deliverer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Deliverer{
		cfg: cfg,
		client: &http.Client{
			Timeout: DeliveryTimeout,
			// A redirect would carry the signed event to another host.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		log: log, observe: observe, now: time.Now,
	}, nil
}

// ProcessTask implements asynq.Handler: one POST of the task's event.
func (d *Deliverer) ProcessTask(ctx context.Context, t *asynq.Task) error {
	body := t.Payload()
	// The event names itself; the task ID is the same.
	var ev struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" {
		return fmt.Errorf("webhook: task payload is not an event: %w", asynq.SkipRetry)
	}
	id := ev.ID
	start := time.Now()
	result, status, err := d.post(ctx, id, body)
	dur := time.Since(start)
	if d.observe != nil {
		d.observe(result, dur)
	}
	log := d.log.With().Str("event_id", id).Str("outcome", result).Int("http_status", status).Dur("duration", dur).Logger()
	if err != nil {
		retry, _ := asynq.GetRetryCount(ctx)
		log.Warn().Err(err).Int("retry", retry).Msg("webhook not delivered, will retry")
		return err
	}
	log.Debug().Msg("webhook delivered")
	return nil
}

func (d *Deliverer) post(ctx context.Context, id string, body []byte) (result string, status int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return ResultUnreachable, 0, fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cardimport-webhook")
	req.Header.Set(EventIDHeader, id)
	req.Header.Set(SignatureHeader, Sign(d.cfg.Secret, d.now(), body))
	resp, err := d.client.Do(req)
	if err != nil {
		// The error names the URL, which the operator configured; it
		// holds no secret (Validate refuses a password in it).
		return ResultUnreachable, 0, fmt.Errorf("webhook: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		return ResultDelivered, resp.StatusCode, nil
	case resp.StatusCode >= 300 && resp.StatusCode <= 399:
		return ResultRedirected, resp.StatusCode, fmt.Errorf("webhook: %d redirect not followed", resp.StatusCode)
	}
	return ResultRefused, resp.StatusCode, fmt.Errorf("webhook: receiver answered %d", resp.StatusCode)
}

// RetryDelay is the webhook queue's backoff: 10 s doubling to an hour, with
// jitter, so that a receiver back from an outage is not flooded at once.
func RetryDelay(n int, _ error, _ *asynq.Task) time.Duration {
	d := retryMinDelay
	for i := 0; i < n && d < retryMaxDelay; i++ {
		d *= 2
	}
	d = min(d, retryMaxDelay)
	return d/2 + rand.N(d/2+1)
}

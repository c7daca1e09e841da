package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/cardimport/cardimport/internal/config"
	"github.com/cardimport/cardimport/internal/logging"
	"github.com/cardimport/cardimport/internal/redisconn"
	"github.com/cardimport/cardimport/internal/webhook"
)

// WebhookConcurrency is how many deliveries a worker makes at once. They
// have a server of their own: a receiver that is down or slow holds these
// slots, never the imports'.
const WebhookConcurrency = 4

// webhooks runs a worker's webhook relay and deliveries.
type webhooks struct {
	srv    *asynq.Server
	cancel context.CancelFunc
	done   chan struct{}
	close  func()
}

// startWebhooks starts the relay and the delivery server when WEBHOOK_URL
// is set; it returns nil otherwise.
func startWebhooks(ctx context.Context, cfg config.Worker, side *sideServers, log zerolog.Logger) (*webhooks, error) {
	if !cfg.Webhook.Enabled() {
		return nil, nil
	}
	log = log.With().Str("component", "webhook").Logger()
	var observe func(string, time.Duration)
	if side.metrics != nil {
		observe = side.metrics.ObserveWebhook
	}
	deliverer, err := webhook.NewDeliverer(cfg.Webhook, log, observe)
	if err != nil {
		return nil, err
	}
	rdb, err := redisconn.Client(cfg.Redis)
	if err != nil {
		return nil, fmt.Errorf("webhooks: %w", err)
	}
	srv := asynq.NewServer(cfg.Redis, asynq.Config{
		Concurrency:       WebhookConcurrency,
		Queues:            map[string]int{webhook.QueueFor(cfg.Queue): 1},
		RetryDelayFunc:    webhook.RetryDelay,
		ShutdownTimeout:   webhook.DeliveryTimeout + time.Second,
		Logger:            logging.NewAsynqLogger(log),
		LogLevel:          asynq.WarnLevel,
		TaskCheckInterval: TaskCheckInterval,
	})
	mux := asynq.NewServeMux()
	mux.Handle(webhook.TypeDeliver, deliverer)
	if err := srv.Start(mux); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("start webhooks: %w", err)
	}
	relayCtx, cancel := context.WithCancel(ctx)
	w := &webhooks{srv: srv, cancel: cancel, done: make(chan struct{}), close: func() { _ = rdb.Close() }}
	go func() {
		defer close(w.done)
		webhook.NewRelay(rdb, cfg.Queue, log).Run(relayCtx)
	}()
	log.Info().Str("queue", webhook.QueueFor(cfg.Queue)).Int("concurrency", WebhookConcurrency).Msg("webhooks started")
	return w, nil
}

// stop ends the relay and lets in-flight deliveries finish.
func (w *webhooks) stop() {
	if w == nil {
		return
	}
	w.cancel()
	<-w.done
	w.srv.Shutdown()
	w.close()
}

package worker

import (
	"fmt"

	"github.com/rs/zerolog"

	"github.com/cardimport/cardimport/internal/config"
	"github.com/cardimport/cardimport/internal/guard"
	"github.com/cardimport/cardimport/internal/importer"
	"github.com/cardimport/cardimport/internal/redisconn"
)

// newGuard puts the fleet's shared rate limit and circuit breaker in front
// of importer. close releases its Redis connection.
func newGuard(cfg config.Worker, importer importer.Importer, log zerolog.Logger) (g *guard.Guard, closeFn func(), err error) {
	rdb, err := redisconn.Client(cfg.Redis)
	if err != nil {
		return nil, nil, fmt.Errorf("guard: %w", err)
	}
	g, err = guard.New(importer, guard.Config{
		Redis:            rdb,
		Queue:            cfg.Queue,
		Rate:             cfg.Guard.RateLimit,
		FailureThreshold: cfg.Guard.BreakerFailures,
		ProbeInterval:    cfg.Guard.BreakerProbeInterval,
		Logger:           &log,
	})
	if err != nil {
		_ = rdb.Close()
		return nil, nil, err
	}
	return g, func() { _ = rdb.Close() }, nil
}

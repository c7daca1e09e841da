package worker

import (
	"context"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/cardimport/cardimport/internal/config"
	"github.com/cardimport/cardimport/internal/dashboard"
	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/internal/guard"
	"github.com/cardimport/cardimport/internal/httpserve"
	"github.com/cardimport/cardimport/internal/importer"
	"github.com/cardimport/cardimport/internal/metrics"
	"github.com/cardimport/cardimport/internal/redisconn"
)

// sideServers are the dashboard and the metrics endpoint a worker serves
// next to its asynq server, when asked (--dashboard, --metrics).
type sideServers struct {
	metrics *metrics.Metrics
	closers []func() error
	servers []*httpserve.Server
	log     zerolog.Logger
}

// startSide starts the side servers cfg asks for. Both bind before the
// worker takes any task, so an address in use stops the start.
func startSide(cfg config.Worker, log zerolog.Logger) (_ *sideServers, err error) {
	s := &sideServers{log: log}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	if cfg.Metrics != "" {
		// The dead-letter count and the breaker's state are the fleet's,
		// read from Redis at each scrape (so they are right in a
		// --dashboard-only process too, where no worker writes), on one
		// connection pool.
		rdb, err := redisconn.Client(cfg.Redis)
		if err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		s.closers = append(s.closers, rdb.Close)
		dead, err := deadletter.NewFromRedisClient(rdb, cfg.Queue)
		if err != nil {
			return nil, err
		}
		s.metrics, err = metrics.New(metrics.Config{
			Redis:          cfg.Redis,
			Queue:          cfg.Queue,
			Logger:         &log,
			DeadLetters:    dead.Count,
			RunsInProgress: dead.Results().InProgress,
			Extra:          []prometheus.Collector{guard.NewCollector(rdb, cfg.Queue)},
		})
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, s.metrics.Close)
		srv, err := httpserve.Start("metrics", "--metrics", cfg.Metrics, metricsMux(s.metrics), log)
		if err != nil {
			return nil, err
		}
		s.servers = append(s.servers, srv)
	}
	if cfg.Dashboard != "" {
		h, err := dashboard.New(dashboard.Config{
			Redis:    cfg.Redis,
			Addr:     cfg.Dashboard,
			User:     cfg.DashboardUser,
			Password: cfg.DashboardPassword,
			ReadOnly: cfg.DashboardReadOnly,
			// Names the dashboard is reached by besides its address
			// (behind a proxy); any other Host is refused, as a
			// DNS-rebinding page would send.
			AllowedHosts: cfg.DashboardAllowedHosts,
			// The Runs page shows this worker's queue, and logs each
			// replay pressed there.
			Queue:  cfg.Queue,
			Logger: &log,
		})
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, h.Close)
		srv, err := httpserve.Start("dashboard", "--dashboard", cfg.Dashboard, h, log)
		if err != nil {
			return nil, err
		}
		s.servers = append(s.servers, srv)
	}
	return s, nil
}

// instrument counts and times the imports when metrics are on.
func (s *sideServers) instrument(imp importer.Importer) importer.Importer {
	if s.metrics == nil {
		return imp
	}
	return s.metrics.InstrumentImporter(imp)
}

// observer counts how attempts end when metrics are on.
func (s *sideServers) observer() importer.Observer {
	if s.metrics == nil {
		return nil
	}
	return s.metrics
}

// dashboardOnly serves the side servers until ctx is cancelled, without
// working the queue (--dashboard-only).
func (s *sideServers) dashboardOnly(ctx context.Context) error {
	s.log.Info().Msg("dashboard only, not working the queue")
	<-ctx.Done()
	return nil
}

// stop shuts the servers down, letting requests in flight finish, and
// closes their Redis connections.
func (s *sideServers) stop() {
	for _, srv := range s.servers {
		srv.Shutdown()
	}
	for _, c := range s.closers {
		_ = c()
	}
	s.servers, s.closers = nil, nil
}

// metricsMux serves the metrics at /metrics, where Prometheus looks.
func metricsMux(m *metrics.Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	return mux
}

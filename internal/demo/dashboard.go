package demo

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/cardimport/cardimport/internal/dashboard"
	"github.com/cardimport/cardimport/internal/httpserve"
)

// defaultDashboard is where the demo serves the dashboard unless
// --dashboard says otherwise: loopback, so it needs no login.
const defaultDashboard = "127.0.0.1:8080"

// startDashboard serves the dashboard (asynqmon, openids masked) for the
// demo's Redis. When the default port is taken and no address was asked
// for, it takes a free port on loopback instead: a newcomer's first run
// should not fail because something else uses 8080.
func startDashboard(cfg demoConfig, redis asynq.RedisConnOpt, getenv func(string) string, log zerolog.Logger) (*httpserve.Server, func(), error) {
	dcfg := dashboard.Config{
		Redis:    redis,
		Addr:     cfg.dashboard,
		User:     getenv("DASHBOARD_USER"),
		Password: getenv("DASHBOARD_PASSWORD"),
	}
	h, err := dashboard.New(dcfg)
	if err != nil {
		return nil, nil, err
	}
	srv, err := httpserve.Start("dashboard", "--dashboard", cfg.dashboard, h, log)
	if err != nil && !cfg.dashboardSet && errors.Is(err, syscall.EADDRINUSE) {
		srv, err = httpserve.Start("dashboard", "--dashboard", "127.0.0.1:0", h, log)
	}
	if err != nil {
		_ = h.Close()
		return nil, nil, fmt.Errorf("dashboard: %w", err)
	}
	return srv, func() {
		srv.Shutdown()
		_ = h.Close()
	}, nil
}

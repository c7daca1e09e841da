package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"strconv"

	"github.com/cardimport/cardimport/internal/dashboard"
	"github.com/cardimport/cardimport/internal/httpserve"
)

// HTTP is the configuration of the worker's side servers: the dashboard
// and the Prometheus endpoint.
type HTTP struct {
	// Dashboard is HOST:PORT of the dashboard (--dashboard). Defaults to
	// none: no dashboard.
	Dashboard string
	// DashboardUser and DashboardPassword are the dashboard's login
	// (DASHBOARD_USER, DASHBOARD_PASSWORD). Required when Dashboard is not a
	// loopback address.
	DashboardUser, DashboardPassword string
	// DashboardReadOnly refuses every change made through the dashboard
	// (--dashboard-read-only, DASHBOARD_READ_ONLY). Defaults to false.
	DashboardReadOnly bool
	// DashboardAllowedHosts are the host names, besides --dashboard's host,
	// loopback and IP addresses, that requests to the dashboard may name
	// in their Host header (DASHBOARD_ALLOWED_HOSTS, comma-separated): the
	// name users type when a proxy is in front of it. Defaults to none;
	// any other name is refused, which stops DNS-rebinding pages.
	DashboardAllowedHosts []string
	// DashboardOnly serves the dashboard (and metrics, when asked) without
	// working the queue, so it needs no WeChat Pay keys (--dashboard-only).
	// Defaults to false.
	DashboardOnly bool
	// Metrics is HOST:PORT of the Prometheus endpoint /metrics
	// (--metrics). Defaults to none.
	Metrics string
}

// httpFlags are the flags of HTTP, bound to a flag set before parsing.
type httpFlags struct {
	dashboard, metrics, readOnly *string
	dashboardOnly                *bool
	env                          func(string) string
}

func bindHTTP(fs *flag.FlagSet, env func(string) string) *httpFlags {
	return &httpFlags{
		env:           env,
		dashboard:     fs.String("dashboard", "", "serve the dashboard on HOST:PORT (login from env DASHBOARD_USER, DASHBOARD_PASSWORD; required unless HOST is loopback; other host names it answers to from env DASHBOARD_ALLOWED_HOSTS)"),
		readOnly:      fs.String("dashboard-read-only", orDefault(env("DASHBOARD_READ_ONLY"), "false"), "dashboard shows but changes nothing (env DASHBOARD_READ_ONLY)"),
		dashboardOnly: fs.Bool("dashboard-only", false, "serve the dashboard (and --metrics) without working the queue; needs no WeChat Pay keys"),
		metrics:       fs.String("metrics", "", "serve Prometheus /metrics on HOST:PORT"),
	}
}

// load checks the parsed flags and the login rule.
func (f *httpFlags) load() (HTTP, []error) {
	h := HTTP{
		Dashboard:         *f.dashboard,
		DashboardUser:     f.env("DASHBOARD_USER"),
		DashboardPassword: f.env("DASHBOARD_PASSWORD"),
		DashboardOnly:     *f.dashboardOnly,
		Metrics:           *f.metrics,
	}
	var errs []error
	ro, err := strconv.ParseBool(*f.readOnly)
	if err != nil {
		errs = append(errs, fmt.Errorf("DASHBOARD_READ_ONLY: %q is not true or false", *f.readOnly))
	}
	h.DashboardReadOnly = ro
	if h.DashboardOnly && h.Dashboard == "" {
		errs = append(errs, errors.New("--dashboard-only: needs --dashboard HOST:PORT"))
	}
	if err := dashboard.CheckLogin(h.Dashboard, h.DashboardUser, h.DashboardPassword); err != nil {
		errs = append(errs, err)
	}
	if h.DashboardAllowedHosts, err = httpserve.ParseHosts("DASHBOARD_ALLOWED_HOSTS", f.env("DASHBOARD_ALLOWED_HOSTS")); err != nil {
		errs = append(errs, err)
	}
	if h.Metrics != "" {
		if _, _, err := net.SplitHostPort(h.Metrics); err != nil {
			errs = append(errs, fmt.Errorf("--metrics: %q is not HOST:PORT", h.Metrics))
		}
	}
	if _, port, _ := net.SplitHostPort(h.Metrics); port != "0" && h.Metrics != "" && h.Metrics == h.Dashboard {
		errs = append(errs, errors.New("--metrics: must differ from --dashboard"))
	}
	return h, errs
}

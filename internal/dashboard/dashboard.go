// Package dashboard serves asynqmon, asynq's web UI, for the import queue,
// and beside it the Runs page (runs.go), the project's own view of runs,
// refusals and members: behind a login whenever it listens beyond this
// host, optionally read-only, and with every member's openid masked in the
// payloads and results it shows (docs/security.md: no personal data on
// the dashboard).
package dashboard

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/rs/zerolog"

	"github.com/cardimport/cardimport/internal/httpserve"
	"github.com/cardimport/cardimport/tasks"
)

// Config configures the dashboard.
type Config struct {
	// Redis is the queue's Redis. Required.
	Redis asynq.RedisConnOpt
	// Addr is HOST:PORT the dashboard listens on (--dashboard). New uses
	// it only to decide whether a login is required; the caller listens.
	Addr string
	// User and Password are the HTTP basic login (DASHBOARD_USER,
	// DASHBOARD_PASSWORD). Required when Addr is not a loopback address;
	// when set, every request must carry them. Default to none.
	User, Password string
	// ReadOnly refuses every request that would change a queue or task
	// (--dashboard-read-only). Defaults to false.
	ReadOnly bool
	// RootPath is the URL path the dashboard lives under. Defaults to "/".
	RootPath string
	// AllowedHosts are the host names, besides Addr's host, loopback and
	// IP addresses, that requests may name in their Host header
	// (DASHBOARD_ALLOWED_HOSTS): the name users type when the dashboard
	// sits behind a proxy. Defaults to none.
	AllowedHosts []string
	// Queue is the import queue whose runs, refusals and members the Runs
	// page shows (--queue). Defaults to tasks.DefaultQueue.
	Queue string
	// Logger receives a line for each replay pressed on the Runs page.
	// Defaults to a logger that discards everything.
	Logger *zerolog.Logger
}

func (c Config) withDefaults() Config {
	if c.RootPath == "" {
		c.RootPath = "/"
	}
	if c.Queue == "" {
		c.Queue = tasks.DefaultQueue
	}
	return c
}

// Validate checks the configuration and names the field, flag or variable
// at fault.
func (c Config) Validate() error {
	var errs []error
	if c.Redis == nil {
		errs = append(errs, errors.New("dashboard: Redis is required"))
	}
	if c.RootPath != "" && !strings.HasPrefix(c.RootPath, "/") {
		errs = append(errs, fmt.Errorf("dashboard: RootPath %q must start with a slash", c.RootPath))
	}
	if err := CheckLogin(c.Addr, c.User, c.Password); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Handler is the dashboard's http.Handler. Close releases its Redis
// connections.
type Handler struct {
	http.Handler
	mon  *asynqmon.HTTPHandler
	runs *runsPage
}

// Close closes the dashboard's connections to Redis.
func (h *Handler) Close() error { return errors.Join(h.mon.Close(), h.runs.close()) }

// realm names the protected space in the browser's login prompt.
const realm = "cardimport dashboard"

// New returns the dashboard handler for a valid configuration.
func New(cfg Config) (*Handler, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	mon := asynqmon.New(asynqmon.Options{
		RootPath:         cfg.RootPath,
		RedisConnOpt:     cfg.Redis,
		ReadOnly:         cfg.ReadOnly,
		PayloadFormatter: asynqmon.PayloadFormatterFunc(FormatPayload),
		ResultFormatter:  asynqmon.ResultFormatterFunc(FormatResult),
	})
	runs, err := newRunsPage(cfg)
	if err != nil {
		_ = mon.Close()
		return nil, err
	}
	// The Runs page sits beside asynqmon, behind the same checks.
	mux := http.NewServeMux()
	mux.Handle("/", withRunsLink(mon, runs.href("/runs")))
	runs.register(mux)
	var h http.Handler = headers(mux)
	if cfg.User != "" || cfg.Password != "" {
		h = requireLogin(cfg.User, cfg.Password, realm, h)
	}
	// Browsers send a basic login with every request to the dashboard,
	// including those another site's page makes, and a loopback dashboard
	// may have no login at all: refuse cross-origin changes and
	// DNS-rebound pages (httpserve.BrowserGuard), before the login is
	// even asked for, and framing by other pages (headers).
	h = httpserve.BrowserGuard{
		ListenAddr:      cfg.Addr,
		AllowedHosts:    cfg.AllowedHosts,
		AllowedHostsVar: "DASHBOARD_ALLOWED_HOSTS",
	}.Handler(h)
	return &Handler{Handler: h, mon: mon, runs: runs}, nil
}

// headers keeps browsers and proxies from caching API answers, which show
// queue contents, and other sites from framing the dashboard.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/api/") {
			w.Header().Set("Cache-Control", "no-store")
		}
		w.Header().Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

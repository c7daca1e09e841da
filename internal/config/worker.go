// Package config reads the worker's configuration from the environment
// variables of docs/contracts.md, lets flags override them, and checks it
// all at start with errors that name the variable or flag at fault.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cardimport/cardimport/internal/importer"
	"github.com/cardimport/cardimport/internal/redisconn"
	"github.com/cardimport/cardimport/internal/webhook"
	"github.com/cardimport/cardimport/internal/wechatpay"
	"github.com/cardimport/cardimport/tasks"
)

// Worker is the worker's configuration.
type Worker struct {
	// Redis connects to the queue. From REDIS_URL or --redis-url.
	Redis asynq.RedisConnOpt
	// Queue is the asynq queue to work. Defaults to tasks.DefaultQueue.
	Queue string
	// Concurrency is how many imports run at once. Defaults to 20.
	Concurrency int
	// RetryMinDelay and RetryMaxDelay bound the backoff of transient
	// faults. Default to importer.DefaultRetryMinDelay and
	// importer.DefaultRetryMaxDelay.
	RetryMinDelay, RetryMaxDelay time.Duration
	// ShutdownTimeout is how long in-flight imports may finish on SIGTERM
	// before they are handed back to the queue. Defaults to 20 s, inside
	// the 30 s a container orchestrator usually grants.
	ShutdownTimeout time.Duration
	// ResultsRetention is how long outcomes and runs are kept
	// (RESULTS_RETENTION). Defaults to results.DefaultRetention.
	ResultsRetention time.Duration
	// LogLevel is debug, info, warn or error. Defaults to info.
	LogLevel string
	// WeChat is the merchant's identity and keys. Not read with
	// --dashboard-only.
	WeChat wechatpay.Config
	// Guard is the shared rate limit and the circuit breaker.
	Guard Guard
	// Webhook is where outcomes are pushed (WEBHOOK_URL, WEBHOOK_SECRET),
	// read from the environment only: a secret is never a flag's default
	// that -h would print.
	Webhook webhook.Config
	// HTTP configures the dashboard and metrics servers.
	HTTP
	// Warnings are problems that do not stop the worker but that an
	// operator should fix, such as a private key file other users may
	// read; the worker logs each at start.
	Warnings []string
}

// DefaultConcurrency keeps enough calls in flight to use a per-merchant
// limit of tens of requests a second at WeChat's usual latency.
const DefaultConcurrency = 20

// LoadWorker reads the configuration from env and lets args (flags)
// override it. Usage and flag errors are written to output. All problems are
// returned together; flag.ErrHelp is returned for -h.
func LoadWorker(args []string, env func(string) string, output io.Writer) (Worker, error) {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(output)
	// REDIS_URL may hold a password: it is read after parsing rather than
	// made the flag's default, which -h would print.
	redisURL := fs.String("redis-url", "", "Redis URL (default $REDIS_URL)")
	queue := fs.String("queue", orDefault(env("QUEUE"), tasks.DefaultQueue), "asynq queue to work (env QUEUE)")
	concurrency := fs.Int("concurrency", DefaultConcurrency, "imports run at once")
	minDelay := fs.String("retry-min-delay", orDefault(env("RETRY_MIN_DELAY"), importer.DefaultRetryMinDelay.String()), "shortest retry backoff (env RETRY_MIN_DELAY)")
	maxDelay := fs.String("retry-max-delay", orDefault(env("RETRY_MAX_DELAY"), importer.DefaultRetryMaxDelay.String()), "longest retry backoff (env RETRY_MAX_DELAY)")
	shutdown := fs.Duration("shutdown-timeout", 20*time.Second, "time in-flight imports get to finish on SIGTERM")
	retention := fs.String("results-retention", orDefault(env("RESULTS_RETENTION"), "30d"), "how long outcomes and runs are kept, a Go duration or days such as 30d (env RESULTS_RETENTION)")
	logLevel := fs.String("log-level", orDefault(env("LOG_LEVEL"), "info"), "debug, info, warn or error (env LOG_LEVEL)")
	baseURL := fs.String("wechatpay-base-url", env("WECHATPAY_BASE_URL"), "WeChat Pay API base URL (env WECHATPAY_BASE_URL)")
	allowHTTP := fs.Bool("wechatpay-allow-http", env("WECHATPAY_ALLOW_HTTP") == "1" || env("WECHATPAY_ALLOW_HTTP") == "true",
		"accept an http:// WeChat Pay base URL on a host that is not loopback, e.g. a sandbox on a private network (env WECHATPAY_ALLOW_HTTP=1)")
	guardFlags := registerGuard(fs, env)
	httpFlags := bindHTTP(fs, env)
	// cmd/worker hands --demo to internal/demo before reading any
	// configuration; declared here so that -h lists it.
	fs.Bool("demo", false, "run the demo instead: embedded Redis, WeChat Pay sandbox and sample members; needs nothing set")
	if err := fs.Parse(args); err != nil {
		return Worker{}, err
	}
	if fs.NArg() > 0 {
		return Worker{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	if *redisURL == "" {
		*redisURL = env("REDIS_URL")
	}
	w := Worker{Queue: *queue, Concurrency: *concurrency, ShutdownTimeout: *shutdown, LogLevel: *logLevel}
	var errs []error
	var err error
	w.HTTP, errs = httpFlags.load()
	if w.Redis, err = redisconn.Parse("REDIS_URL", *redisURL); err != nil {
		errs = append(errs, err)
	}
	if w.RetryMinDelay, err = parseDuration("RETRY_MIN_DELAY", *minDelay); err != nil {
		errs = append(errs, err)
	}
	if w.RetryMaxDelay, err = parseDuration("RETRY_MAX_DELAY", *maxDelay); err != nil {
		errs = append(errs, err)
	}
	if err == nil && w.RetryMaxDelay < w.RetryMinDelay {
		errs = append(errs, fmt.Errorf("RETRY_MAX_DELAY: %s is shorter than RETRY_MIN_DELAY %s", w.RetryMaxDelay, w.RetryMinDelay))
	}
	var guardErrs []error
	w.Guard, guardErrs = guardFlags.check()
	errs = append(errs, guardErrs...)
	if w.Queue == "" {
		errs = append(errs, errors.New("--queue: must not be empty"))
	}
	if w.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("--concurrency: must be at least 1, got %d", w.Concurrency))
	}
	w.Webhook = webhook.Config{URL: strings.TrimSpace(env("WEBHOOK_URL")), Secret: env("WEBHOOK_SECRET")}
	if err := w.Webhook.Validate(); err != nil {
		errs = append(errs, err)
	}
	if w.ResultsRetention, err = ParseRetention(*retention); err != nil {
		errs = append(errs, fmt.Errorf("RESULTS_RETENTION: %w", err))
	}
	if w.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("--shutdown-timeout: must be positive"))
	}
	wenv := func(name string) string {
		if name == "WECHATPAY_BASE_URL" {
			return *baseURL
		}
		return env(name)
	}
	if !w.DashboardOnly {
		// Serving the dashboard needs Redis only.
		w.WeChat, w.Warnings, err = WeChatPay(wenv)
		w.WeChat.AllowHTTP = *allowHTTP
		if err == nil {
			err = w.WeChat.Validate()
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return w, errors.Join(errs...)
}

// ParseRetention reads a retention: a Go duration ("720h") or whole days
// ("30d"), positive.
func ParseRetention(v string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration (e.g. 30d or 720h)", v)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, fmt.Errorf("%q is not a duration (e.g. 30d or 720h)", v)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("must be positive, got %q", v)
	}
	return d, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func parseDuration(name, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		if _, nerr := strconv.Atoi(v); nerr == nil {
			return 0, fmt.Errorf("%s: %q has no unit (e.g. 2s, 10m)", name, v)
		}
		return 0, fmt.Errorf("%s: %q is not a duration (e.g. 2s, 10m)", name, v)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s: must be positive, got %s", name, v)
	}
	return d, nil
}

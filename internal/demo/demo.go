// Package demo is `worker --demo`: the whole product on a machine that has
// only Go. It starts an embedded Redis (miniredis) and the WeChat Pay
// sandbox in the process, with a mix of faults, enqueues a built-in sample
// of members into a run through the enqueue command, and runs the real
// worker against them, printing a live summary and, once the run settled,
// its counts and the command that exports its results. Nothing is written
// to disk and nothing reaches WeChat; SIGTERM or Ctrl-C ends it with exit 0.
package demo

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/cardimport/cardimport/internal/config"
	"github.com/cardimport/cardimport/internal/enqueuecmd"
	"github.com/cardimport/cardimport/internal/logging"
	"github.com/cardimport/cardimport/internal/redisconn"
	"github.com/cardimport/cardimport/internal/wechatpay"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
	"github.com/cardimport/cardimport/internal/worker"
	"github.com/cardimport/cardimport/results"
	"github.com/cardimport/cardimport/tasks"
)

// Requested reports whether the worker's arguments ask for the demo: -demo
// or --demo, alone or with any value the flag package reads as true
// (--demo=1, --demo=true, ...), since `worker -h` lists it as a bool flag.
func Requested(args []string) bool {
	for _, a := range args {
		name, value, hasValue := strings.Cut(a, "=")
		if name != "-demo" && name != "--demo" {
			continue
		}
		if on, err := strconv.ParseBool(value); !hasValue || err == nil && on {
			return true
		}
	}
	return false
}

// Faults the demo's sandbox injects, so the summary shows retries at work.
const (
	demoTransientShare = 0.15                  // first attempts answered 500 SYSTEM_ERROR
	demoRateLimit      = 50                    // requests a second before the sandbox answers 429
	demoWorkerRate     = 45                    // WECHATPAY_RATE_LIMIT: the workers' shared limit, under the sandbox's
	demoLatency        = 60 * time.Millisecond // per answer, about WeChat's
	demoUnavailable    = 12                    // 503 SERVICE_UNAVAILABLE in a row at the start: the circuit opens
	demoBreakerAfter   = 10                    // 5xx in a row that open the circuit
	demoProbeInterval  = time.Second           // probes while the circuit is open
	demoLostAnswers    = 3                     // imported, but the answer is lost
)

// demoConfig is what the demo's flags set.
type demoConfig struct {
	dashboard    string
	dashboardSet bool // --dashboard given: its address or nothing
	logLevel     string
	concurrency  int
}

// Run runs the demo until ctx is cancelled and returns nil; args are the
// worker's (with --demo among them). getenv is read for the dashboard's
// login only (DASHBOARD_USER, DASHBOARD_PASSWORD), needed when --dashboard
// is not on loopback.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := zerolog.Nop()
	if cfg.logLevel != "" {
		if log, err = logging.New(stderr, cfg.logLevel); err != nil {
			return fmt.Errorf("--log-level: %w", err)
		}
	}
	start := time.Now()
	fmt.Fprintln(stdout, "DEMO: an embedded Redis and a WeChat Pay sandbox run inside this process.")
	fmt.Fprintln(stdout, "DEMO: all data is in memory only and is gone when it stops; nothing reaches WeChat.")

	redis, err := miniredis.Run()
	if err != nil {
		return fmt.Errorf("embedded redis: %w", err)
	}
	defer redis.Close()
	redisURL := "redis://" + redis.Addr() + "/0"

	keys, err := wechatpaytest.GenerateKeys()
	if err != nil {
		return err
	}
	sb := wechatpaytest.NewServer(keys,
		wechatpaytest.WithFirstAttemptFaults(demoTransientShare),
		wechatpaytest.WithRateLimit(demoRateLimit),
		wechatpaytest.WithLatency(demoLatency))
	defer sb.Close()
	s := newSample()
	for _, id := range s.seeded {
		sb.Seed(demoCard, id)
	}
	sb.FailNext(demoUnavailable, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "服务不可用 (demo outage)")
	sb.LoseNextAnswers(demoLostAnswers)
	fmt.Fprintf(stdout, "sandbox: %s (stats at %s/stats): %d answers 503 at first, %.0f%% of first attempts fail, %d requests/s before 429, %s latency, %d answers lost\n",
		sb.URL, sb.URL, demoUnavailable, demoTransientShare*100, demoRateLimit, demoLatency, demoLostAnswers)
	fmt.Fprintf(stdout, "redis: %s (embedded; e.g. REDIS_URL=%s go run ./cmd/enqueue dead list)\n", redisURL, redisURL)

	wcfg := config.Worker{
		Redis:       redisconn.ClientOpt{RedisClientOpt: asynq.RedisClientOpt{Addr: redis.Addr()}},
		Queue:       tasks.DefaultQueue,
		Concurrency: cfg.concurrency,
		// Short backoff, so retries are seen within seconds.
		RetryMinDelay:   500 * time.Millisecond,
		RetryMaxDelay:   3 * time.Second,
		ShutdownTimeout: 5 * time.Second,
		LogLevel:        cfg.logLevel,
		WeChat:          sb.ClientConfig(wechatpay.ModePublicKey),
		Guard: config.Guard{
			RateLimit:            demoWorkerRate,
			BreakerFailures:      demoBreakerAfter,
			BreakerProbeInterval: demoProbeInterval,
		},
	}
	workerCtx, stopWorker := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWorker()
	served := make(chan error, 1)
	go func() { served <- worker.Serve(workerCtx, wcfg, log) }()

	dash, stopDashboard, err := startDashboard(cfg, wcfg.Redis, getenv, log)
	if err != nil {
		stopWorker()
		<-served
		return err
	}
	defer stopDashboard()
	fmt.Fprintf(stdout, "dashboard: http://%s/ (queue %q)\n", dash.Addr(), wcfg.Queue)

	fmt.Fprintf(stdout, "enqueue: %d members of the built-in sample (%d new, %d already members, %d to be refused for good, %d invalid rows)\n",
		s.valid+sampleInvalid, sampleNew, sampleMemberPrefix+sampleSeeded,
		sampleNoTrade+sampleUnknownCard+sampleNoAuthCard+sampleCodeTaken, sampleInvalid)
	// A run of the demo's own name, so that it stands out in
	// `enqueue runs`; enqueue prints it as run=ID.
	run, err := newDemoRun(wcfg, "demo-"+results.NewRunID(start), redisURL)
	if err != nil {
		stopWorker()
		<-served
		return err
	}
	defer run.close()
	var enqOut, enqErr bytes.Buffer
	enqEnv := func(name string) string {
		if name == "REDIS_URL" {
			return redisURL
		}
		return ""
	}
	enqueuecmd.Run(ctx, []string{"file", "--run", run.id, "--format", "csv", "-"}, enqEnv, bytes.NewReader(s.csv), &enqOut, &enqErr)
	for _, line := range strings.Split(strings.TrimSpace(enqErr.String()+enqOut.String()), "\n") {
		fmt.Fprintln(stdout, "  "+line)
	}

	insp := asynq.NewInspector(wcfg.Redis)
	defer insp.Close()
	live := newLiveLine(stdout)
	live.println("working; Ctrl-C stops the demo")
	err = watch(ctx, insp, wcfg.Queue, s.valid, start, live, served, run)

	stopWorker()
	if err == nil {
		// watch returns nil only when ctx ended; the worker is still to stop.
		err = <-served
	}
	if c, cerr := count(insp, wcfg.Queue); cerr == nil {
		live.println("demo: stopped after %s: %s", time.Since(start).Round(time.Second), c)
	}
	st := sb.Stats()
	fmt.Fprintf(stdout, "sandbox: requests=%d imports=%d replays=%d refusals=%v\n", st.Requests, st.Imports, st.Replays, st.Refusals)
	return err
}

// watch redraws the summary every second until ctx ends, says once when
// every member has reached an end, and then, once the run settled, its
// counts and where to export its results. A worker that stops on its own
// ends the demo with its error; watch then has taken it from served.
func watch(ctx context.Context, insp *asynq.Inspector, queue string, total int, start time.Time, live *liveLine, served <-chan error, run *demoRun) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	finished, told := false, false
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-served:
			if err == nil {
				err = errors.New("worker stopped")
			}
			return fmt.Errorf("worker: %w", err)
		case <-tick.C:
		}
		c, err := count(insp, queue)
		if err != nil {
			live.println("demo: read queue: %v", err)
			continue
		}
		live.show(time.Since(start), c)
		if !finished && c.done() == total {
			finished = true
			live.println("demo: all %d members reached an end in %s: %s", total, time.Since(start).Round(100*time.Millisecond), c)
		}
		if finished && !told {
			told = run.tellIfSettled(ctx, live)
		}
	}
}

// demoRun is the run the sample goes into, read as a registration system
// reads it: its counts in Redis, kept apart from asynq's tasks.
type demoRun struct {
	id       string
	redisURL string
	store    *results.Store
	close    func()
}

func newDemoRun(wcfg config.Worker, id, redisURL string) (*demoRun, error) {
	rdb, err := redisconn.Client(wcfg.Redis)
	if err != nil {
		return nil, fmt.Errorf("results: %w", err)
	}
	store, err := results.New(rdb, wcfg.Queue)
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	return &demoRun{id: id, redisURL: redisURL, store: store, close: func() { _ = rdb.Close() }}, nil
}

// tellIfSettled prints the run's counts and the command that exports its
// results once the run has settled (enqueue closed it and none of its
// members is left waiting), and reports whether it is done telling: a run
// it cannot read is said once, not every second. The command works while
// the demo runs: its Redis goes when the demo stops.
func (r *demoRun) tellIfSettled(ctx context.Context, live *liveLine) bool {
	run, err := r.store.Run(ctx, r.id)
	if err != nil {
		live.println("demo: read run %s: %v", r.id, err)
		return true
	}
	if !run.Settled() {
		return false
	}
	live.println("demo: run %s settled: enqueued=%d duplicates=%d invalid=%d imported=%d already_member=%d dead=%d",
		run.ID, run.Enqueued, run.Duplicates, run.Invalid, run.Imported, run.AlreadyMember, run.Dead)
	live.println("demo: its results, one line a member, while the demo runs: REDIS_URL=%s go run ./cmd/enqueue results export --run %s",
		r.redisURL, r.id)
	return true
}

func parseFlags(args []string, stderr io.Writer) (demoConfig, error) {
	fs := flag.NewFlagSet("worker --demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg demoConfig
	fs.Bool("demo", true, "run the demo (needs no Redis and no credentials)")
	fs.StringVar(&cfg.dashboard, "dashboard", defaultDashboard, "serve the dashboard on HOST:PORT (a free loopback port when the default is taken; beyond loopback it needs DASHBOARD_USER and DASHBOARD_PASSWORD)")
	fs.StringVar(&cfg.logLevel, "log-level", "", "also write the worker's JSON logs to stderr at this level (debug, info, warn, error)")
	fs.IntVar(&cfg.concurrency, "concurrency", 4, "imports run at once")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) { cfg.dashboardSet = cfg.dashboardSet || f.Name == "dashboard" })
	if cfg.concurrency < 1 {
		return cfg, fmt.Errorf("--concurrency: must be at least 1, got %d", cfg.concurrency)
	}
	return cfg, nil
}

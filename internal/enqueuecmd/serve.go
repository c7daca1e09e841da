package enqueuecmd

import (
	"context"
	"errors"
	"fmt"

	"github.com/cardimport/cardimport/internal/httpserve"
	"github.com/cardimport/cardimport/internal/intake"
	"github.com/cardimport/cardimport/internal/logging"
	"github.com/cardimport/cardimport/tasks"
)

const serveAbout = `Serves the HTTP intake: POST /v1/imports takes members as a JSON array
(Content-Type application/json) or as JSON lines (application/x-ndjson) and
answers
  {"enqueued":N,"duplicates":M,"invalid":[{"index":I,"error":"field: problem"}]}
with the validation and duplicate rules of enqueue file. Requests carry
"Authorization: Bearer $INTAKE_TOKEN" (401 without it); another Content-Type
gets 415, a body that is not JSON of that shape 400, one over
--max-body-bytes or --max-members 413, and 503 with Retry-After when Redis
cannot be reached (sending it again is safe). The members go into a run:
?run=NAME, or a new one; the answer names it ("run":…). Behind the same
token, GET /v1/runs/{run} answers the run's counts,
GET /v1/results?run=&after=CURSOR&limit=N pages through the outcomes
({"results":[…],"next":CURSOR}), and GET /v1/imports/{out_request_no} tells
where one member's import stands (its openid masked). GET /healthz answers
200 while Redis answers.

Without INTAKE_TOKEN it only listens on a loopback address; elsewhere the
token must be at least 16 bytes. Requests from web pages of other sites, and
requests naming a host other than its address, loopback or
INTAKE_ALLOWED_HOSTS, get 403: a page in a browser cannot enqueue members.
Access logs are JSON lines on standard output, without bodies, openids or
tokens. SIGINT or SIGTERM stops it after in-flight requests finish.`

func runServe(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "serve", "[flags]", serveAbout)
	var tf taskFlags
	tf.register(fs.FlagSet)
	addr := fs.String("addr", intake.DefaultAddr, "`host:port` to listen on")
	maxBody := fs.Int64("max-body-bytes", intake.DefaultMaxBodyBytes, "largest request body, in `bytes`")
	maxMembers := fs.Int("max-members", intake.DefaultMaxMembers, "most members in one request")
	maxInFlight := fs.Int("max-in-flight", intake.DefaultMaxInFlight, "most requests handled at once; more are answered 503 with Retry-After")
	concurrency := fs.Int("concurrency", defaultConcurrency, "`number` of enqueues in flight per request")
	shutdown := fs.Duration("shutdown-timeout", intake.DefaultShutdownTimeout, "time in-flight requests get to finish on SIGTERM")
	logLevel := fs.String("log-level", "info", "`level` of the logs: debug, info, warn, error")
	if err := fs.parseNoArgs(args, "serve"); err != nil {
		return err
	}
	for _, check := range []struct {
		flag string
		bad  bool
	}{
		{"--max-body-bytes", *maxBody < 1},
		{"--max-members", *maxMembers < 1},
		{"--max-in-flight", *maxInFlight < 1},
		{"--concurrency", *concurrency < 1},
		{"--shutdown-timeout", *shutdown <= 0},
	} {
		if check.bad {
			return fmt.Errorf("%s: must be positive", check.flag)
		}
	}
	opts, err := tf.options(fs.redis.queue)
	if err != nil {
		return err
	}
	log, err := logging.New(c.stdout, *logLevel)
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	allowedHosts, err := httpserve.ParseHosts("INTAKE_ALLOWED_HOSTS", c.getenv("INTAKE_ALLOWED_HOSTS"))
	if err != nil {
		return err
	}
	cn, err := fs.connect(c)
	if err != nil {
		return err
	}
	defer cn.close()
	store, err := cn.dead()
	if err != nil {
		return err
	}
	producer, err := cn.producer(tasks.WithTaskOptions(opts...), tasks.WithConcurrency(*concurrency))
	if err != nil {
		return err
	}
	srv, err := intake.New(ctx, intake.Config{
		Addr:            *addr,
		Token:           c.getenv("INTAKE_TOKEN"),
		AllowedHosts:    allowedHosts,
		MaxBodyBytes:    *maxBody,
		MaxMembers:      *maxMembers,
		MaxInFlight:     *maxInFlight,
		ShutdownTimeout: *shutdown,
		Producer:        producer,
		Store:           store,
		Logger:          log,
	})
	if errors.Is(err, intake.ErrNoToken) || errors.Is(err, intake.ErrShortToken) {
		return fmt.Errorf("%w; refusing to listen on %s", err, *addr)
	} else if err != nil {
		return err
	}
	// Say at once that Redis is unreachable, rather than at the first
	// request; a Redis that goes away later shows in /healthz.
	if err := cn.ping(ctx); err != nil {
		return err
	}
	return srv.ListenAndServe(ctx)
}

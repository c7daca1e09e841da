package enqueuecmd

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/cardimport/cardimport/internal/redisconn"
	"github.com/cardimport/cardimport/tasks"
)

// newFlagSet returns the flag set of a subcommand. Parse errors and -h
// print on standard error, as flag does, followed by the usage.
func newFlagSet(c *cli, name, args, about string) *flag.FlagSet {
	fs := flag.NewFlagSet("enqueue "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: enqueue %s %s\n\n%s\n\nflags:\n", name, args, about)
		fs.PrintDefaults()
		fmt.Fprint(c.stderr, envHelp, exitHelp)
	}
	return fs
}

// parseFlags parses args into fs. done is set when the command should stop
// and exit with code: after -h (0) or a bad flag (1).
func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK, true
	case err != nil:
		return exitUsage, true
	}
	return 0, false
}

// redisFlags say where tasks go: which Redis, which queue.
type redisFlags struct {
	url   string
	queue string
}

func (f *redisFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	queue := getenv("QUEUE")
	if queue == "" {
		queue = tasks.DefaultQueue
	}
	// The default is not shown as $REDIS_URL's value: it may hold a
	// password, and usage goes to terminals and CI logs.
	fs.StringVar(&f.url, "redis-url", "", "Redis `URL` to enqueue into (default $REDIS_URL)")
	fs.StringVar(&f.queue, "queue", queue, "`name` of the queue to enqueue into; $QUEUE sets the default")
}

// connOpt returns how to reach Redis. Its errors name where the URL came
// from but never repeat it, since it may hold a password.
func (f *redisFlags) connOpt(getenv func(string) string) (asynq.RedisConnOpt, error) {
	source, uri := "--redis-url", f.url
	if uri == "" {
		source, uri = "REDIS_URL", getenv("REDIS_URL")
	}
	if uri == "" {
		return nil, errors.New("REDIS_URL: not set (set it, or pass --redis-url)")
	}
	return redisconn.Parse(source, uri)
}

// client opens a Redis client where the flags (or REDIS_URL) point: the
// one way every subcommand reaches Redis. Its errors never repeat the URL.
func (f *redisFlags) client(getenv func(string) string) (redis.UniversalClient, error) {
	connOpt, err := f.connOpt(getenv)
	if err != nil {
		return nil, err
	}
	return redisconn.Client(connOpt)
}

// taskFlags set the options of the tasks a command creates.
type taskFlags struct {
	maxRetry  int
	timeout   time.Duration
	retention time.Duration
}

func (f *taskFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.maxRetry, "max-retry", tasks.DefaultMaxRetry, "retries of a transient fault before a task is archived")
	fs.DurationVar(&f.timeout, "timeout", tasks.DefaultTimeout, "bound of one import attempt")
	fs.DurationVar(&f.retention, "retention", tasks.DefaultRetention, "how long a finished task and its result are kept; enqueueing its out_request_no again within it is a duplicate")
}

// options returns the task options for queue, or an error naming the flag
// at fault (the tasks package names each option as its flag).
func (f *taskFlags) options(queue string) ([]tasks.Option, error) {
	opts := []tasks.Option{
		tasks.WithQueue(queue),
		tasks.WithMaxRetry(f.maxRetry),
		tasks.WithTimeout(f.timeout),
		tasks.WithRetention(f.retention),
	}
	if err := tasks.ValidateOptions(opts...); err != nil {
		return nil, fmt.Errorf("--%w", err)
	}
	return opts, nil
}

package enqueuecmd

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cardimport/cardimport/internal/redisconn"
	"github.com/cardimport/cardimport/tasks"
)

// cmdFlags is the flag set of a subcommand, with the Redis flags every
// subcommand takes.
type cmdFlags struct {
	*flag.FlagSet
	redis redisFlags
}

// newFlags returns the flag set of a subcommand, the Redis flags
// registered. Parse errors and -h print on standard error, as flag does,
// followed by the usage.
func newFlags(c *cli, name, args, about string) *cmdFlags {
	fs := flag.NewFlagSet("enqueue "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: enqueue %s %s\n\n%s\n\nflags:\n", name, args, about)
		fs.PrintDefaults()
		fmt.Fprint(c.stderr, envHelp, exitHelp)
	}
	f := &cmdFlags{FlagSet: fs}
	f.redis.register(fs, c.getenv)
	return f
}

// parse parses args. Its errors end the command, the flag set having said
// why: errHelp after -h, errUsage after a bad flag.
func (f *cmdFlags) parse(args []string) error {
	err := f.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return errHelp
	case err != nil:
		return errUsage
	}
	return nil
}

// parseNoArgs parses args of a command that takes flags only; cmd names
// it in the error about a stray argument, which is not echoed (it may well
// be an openid).
func (f *cmdFlags) parseNoArgs(args []string, cmd string) error {
	if err := f.parse(args); err != nil {
		return err
	}
	return f.noArgs(cmd)
}

// noArgs is the error about stray positional arguments, named for cmd.
func (f *cmdFlags) noArgs(cmd string) error {
	if f.NArg() > 0 {
		return fmt.Errorf("%s: takes no arguments, got %d", cmd, f.NArg())
	}
	return nil
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

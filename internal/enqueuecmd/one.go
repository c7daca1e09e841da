package enqueuecmd

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cardimport/cardimport/results"
	"github.com/cardimport/cardimport/tasks"
)

const oneAbout = `Enqueues the import of one member, in a run (--run, default a new one).
Prints "run=ID", then "enqueued out_request_no=N", or "duplicate
out_request_no=N" when a task with that number is already in the queue
(which is not an error).`

func runOne(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "one", "--card-id CARD --openid OPENID [--code CODE] --out-request-no N [flags]", oneAbout)
	var p tasks.Payload
	fs.StringVar(&p.CardID, "card-id", "", "the member `card` (required)")
	fs.StringVar(&p.OpenID, "openid", "", "the member's `openid` under an AppID bound to the card's brand (required)")
	fs.StringVar(&p.Code, "code", "", "card `code` to assign, for cards whose codes the merchant allocates")
	fs.StringVar(&p.OutRequestNo, "out-request-no", "", "the merchant's unique `number` for this import, also the task ID (required)")
	var rf redisFlags
	rf.register(fs, c.getenv)
	var tf taskFlags
	tf.register(fs)
	run := fs.String("run", "", "`ID` of the run the member belongs to (default a new one, printed)")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *run == "" {
		*run = results.NewRunID(time.Now())
	} else if err := results.ValidateRunID(*run); err != nil {
		c.errorf("--%v", err)
		return exitUsage
	}
	// The arguments are not echoed: a stray one may well be an openid.
	if fs.NArg() > 0 {
		c.errorf("one: takes no arguments, got %d (give the member with flags)", fs.NArg())
		return exitUsage
	}
	opts, err := tf.options(rf.queue)
	if err != nil {
		c.errorf("%v", err)
		return exitUsage
	}
	if err := p.Validate(); err != nil {
		c.errorf("%v", err)
		return exitInvalid
	}
	conn, err := openResults(ctx, c, rf)
	if err != nil {
		c.errorf("%v", err)
		return exitFailure
	}
	defer conn.close()
	client := asynq.NewClientFromRedisClient(conn.rdb)
	producer, err := tasks.NewProducer(client, tasks.WithTaskOptions(opts...), tasks.WithRun(conn.Store, *run))
	if err != nil {
		c.errorf("%v", err)
		return exitUsage
	}
	fmt.Fprintf(c.stdout, "run=%s\n", *run)
	duplicate, err := producer.Enqueue(ctx, p)
	if err == nil {
		err = producer.CloseRun(ctx)
	}
	switch {
	case err != nil:
		c.errorf("out_request_no=%s: %v", p.OutRequestNo, err)
		return exitFailure
	case duplicate:
		// Validate allowed only letters, digits and | _ * - in the number.
		fmt.Fprintf(c.stdout, "duplicate out_request_no=%s\n", p.OutRequestNo)
	default:
		fmt.Fprintf(c.stdout, "enqueued out_request_no=%s\n", p.OutRequestNo)
	}
	return exitOK
}

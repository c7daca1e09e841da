package enqueuecmd

import (
	"context"
	"fmt"
	"time"

	"github.com/cardimport/cardimport/results"
	"github.com/cardimport/cardimport/tasks"
)

const oneAbout = `Enqueues the import of one member, in a run (--run, default a new one).
Prints "run=ID", then "enqueued out_request_no=N", or "duplicate
out_request_no=N" when a task with that number is already in the queue
(which is not an error).`

func runOne(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "one", "--card-id CARD --openid OPENID [--code CODE] --out-request-no N [flags]", oneAbout)
	var p tasks.Payload
	fs.StringVar(&p.CardID, "card-id", "", "the member `card` (required)")
	fs.StringVar(&p.OpenID, "openid", "", "the member's `openid` under an AppID bound to the card's brand (required)")
	fs.StringVar(&p.Code, "code", "", "card `code` to assign, for cards whose codes the merchant allocates")
	fs.StringVar(&p.OutRequestNo, "out-request-no", "", "the merchant's unique `number` for this import, also the task ID (required)")
	var tf taskFlags
	tf.register(fs.FlagSet)
	run := fs.String("run", "", "`ID` of the run the member belongs to (default a new one, printed)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *run == "" {
		*run = results.NewRunID(time.Now())
	} else if err := results.ValidateRunID(*run); err != nil {
		return fmt.Errorf("--%w", err)
	}
	if err := fs.noArgs("one"); err != nil {
		return fmt.Errorf("%w (give the member with flags)", err)
	}
	opts, err := tf.options(fs.redis.queue)
	if err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return withCode(exitInvalid, err)
	}
	cn, rs, err := fs.openResults(ctx, c)
	if err != nil {
		return err
	}
	defer cn.close()
	producer, err := cn.producer(tasks.WithTaskOptions(opts...), tasks.WithRun(rs, *run))
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "run=%s\n", *run)
	duplicate, err := producer.Enqueue(ctx, p)
	if err == nil {
		err = producer.CloseRun(ctx)
	}
	switch {
	case err != nil:
		return fmt.Errorf("out_request_no=%s: %w", p.OutRequestNo, err)
	case duplicate:
		// Validate allowed only letters, digits and | _ * - in the number.
		fmt.Fprintf(c.stdout, "duplicate out_request_no=%s\n", p.OutRequestNo)
	default:
		fmt.Fprintf(c.stdout, "enqueued out_request_no=%s\n", p.OutRequestNo)
	}
	return nil
}

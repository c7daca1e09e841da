package enqueuecmd

import (
	"context"
	"fmt"
	"slices"
	"text/tabwriter"

	"github.com/hibiken/asynq"

	"github.com/cardimport/cardimport/internal/termsafe"
	"github.com/cardimport/cardimport/internal/webhook"
)

const webhooksAbout = `Shows the webhook deliveries of the queue (WEBHOOK_URL): how many wait,
are retried, and are dead (archived after about a day of retries), or with
a subcommand:
  enqueue webhooks dead             list the dead deliveries: event id, type,
                                    last error, when it last failed
  enqueue webhooks replay --all     put every dead delivery back
  enqueue webhooks replay ID...     put these back
The last line of replay is
  replayed=N`

func runWebhooks(ctx context.Context, c *cli, args []string) int {
	sub, args := takeWord(args, "dead", "replay")
	fs := newFlagSet(c, "webhooks", "[dead | replay (--all | ID...)] [flags]", webhooksAbout)
	var rf redisFlags
	rf.register(fs, c.getenv)
	all := fs.Bool("all", false, "replay every dead delivery")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	connOpt, err := rf.connOpt(c.getenv)
	if err != nil {
		c.errorf("%v", err)
		return exitFailure
	}
	insp := asynq.NewInspector(connOpt)
	defer insp.Close()
	queue := webhook.QueueFor(rf.queue)
	// asynq's inspector does not wrap "no such queue" in ErrQueueNotFound
	// for every call; a queue no delivery was ever made to is asked for
	// by name first.
	queues, err := insp.Queues()
	if err != nil {
		c.errorf("webhooks: redis: %v", err)
		return exitFailure
	}
	known := slices.Contains(queues, queue)
	switch sub {
	case "":
		if fs.NArg() > 0 {
			c.errorf("webhooks: unexpected argument (subcommands: dead, replay)")
			return exitUsage
		}
		if !known {
			fmt.Fprintln(c.stdout, "pending=0 retry=0 dead=0 delivered=0")
			return exitOK
		}
		info, err := insp.GetQueueInfo(queue)
		if err != nil {
			c.errorf("webhooks: %v", err)
			return exitFailure
		}
		fmt.Fprintf(c.stdout, "pending=%d retry=%d dead=%d delivered=%d\n", info.Pending+info.Active+info.Scheduled, info.Retry, info.Archived, info.Completed)
		return exitOK
	case "dead":
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "EVENT\tRETRIED\tLAST_FAILED\tLAST_ERROR")
		n := 0
		for page := 1; known; page++ {
			infos, err := insp.ListArchivedTasks(queue, asynq.Page(page), asynq.PageSize(500))
			if err != nil {
				c.errorf("webhooks: %v", err)
				return exitFailure
			}
			for _, ti := range infos {
				n++
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", termsafe.String(ti.ID), ti.Retried, ti.LastFailedAt.UTC().Format("2006-01-02T15:04:05Z"), termsafe.String(truncate(ti.LastErr, 120)))
			}
			if len(infos) < 500 {
				break
			}
		}
		_ = tw.Flush()
		fmt.Fprintf(c.stdout, "dead=%d\n", n)
		return exitOK
	}
	// replay
	replayed := 0
	switch {
	case *all && fs.NArg() == 0 && !known:
	case *all && fs.NArg() == 0:
		n, err := insp.RunAllArchivedTasks(queue)
		if err != nil {
			c.errorf("webhooks replay: %v", err)
			return exitFailure
		}
		replayed = n
	case !*all && fs.NArg() > 0:
		for _, id := range fs.Args() {
			if err := insp.RunTask(queue, id); err != nil {
				c.errorf("webhooks replay %s: %v", termsafe.String(id), err)
				fmt.Fprintf(c.stdout, "replayed=%d\n", replayed)
				return exitFailure
			}
			replayed++
		}
	default:
		c.errorf("webhooks replay: want --all or event IDs, not both")
		return exitUsage
	}
	fmt.Fprintf(c.stdout, "replayed=%d\n", replayed)
	return exitOK
}

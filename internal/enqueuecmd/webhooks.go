package enqueuecmd

import (
	"context"
	"errors"
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

func runWebhooks(ctx context.Context, c *cli, args []string) error {
	sub, args := takeWord(args, "dead", "replay")
	fs := newFlags(c, "webhooks", "[dead | replay (--all | ID...)] [flags]", webhooksAbout)
	all := fs.Bool("all", false, "replay every dead delivery")
	if err := fs.parse(args); err != nil {
		return err
	}
	cn, err := fs.connect(c)
	if err != nil {
		return err
	}
	defer cn.close()
	insp := cn.inspector()
	queue := webhook.QueueFor(cn.queue)
	// asynq's inspector does not wrap "no such queue" in ErrQueueNotFound
	// for every call; a queue no delivery was ever made to is asked for
	// by name first.
	queues, err := insp.Queues()
	if err != nil {
		return fmt.Errorf("webhooks: redis: %w", err)
	}
	known := slices.Contains(queues, queue)
	switch sub {
	case "":
		if fs.NArg() > 0 {
			return errors.New("webhooks: unexpected argument (subcommands: dead, replay)")
		}
		return webhookCounts(c, insp, queue, known)
	case "dead":
		return listDeadWebhooks(c, insp, queue, known)
	}
	switch {
	case *all && fs.NArg() == 0:
		return replayWebhooks(c, insp, queue, known, nil)
	case !*all && fs.NArg() > 0:
		return replayWebhooks(c, insp, queue, known, fs.Args())
	}
	return errors.New("webhooks replay: want --all or event IDs, not both")
}

// webhookCounts prints how many deliveries wait, are retried, are dead and
// were delivered.
func webhookCounts(c *cli, insp *asynq.Inspector, queue string, known bool) error {
	if !known {
		fmt.Fprintln(c.stdout, "pending=0 retry=0 dead=0 delivered=0")
		return nil
	}
	info, err := insp.GetQueueInfo(queue)
	if err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	fmt.Fprintf(c.stdout, "pending=%d retry=%d dead=%d delivered=%d\n", info.Pending+info.Active+info.Scheduled, info.Retry, info.Archived, info.Completed)
	return nil
}

// listDeadWebhooks prints the table of dead deliveries and dead=N.
func listDeadWebhooks(c *cli, insp *asynq.Inspector, queue string, known bool) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT\tRETRIED\tLAST_FAILED\tLAST_ERROR")
	n := 0
	for page := 1; known; page++ {
		infos, err := insp.ListArchivedTasks(queue, asynq.Page(page), asynq.PageSize(500))
		if err != nil {
			return fmt.Errorf("webhooks: %w", err)
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
	return nil
}

// replayWebhooks puts the dead deliveries ids back, or every one for nil
// ids, and prints replayed=N.
func replayWebhooks(c *cli, insp *asynq.Inspector, queue string, known bool, ids []string) error {
	replayed := 0
	switch {
	case ids == nil && !known:
	case ids == nil:
		n, err := insp.RunAllArchivedTasks(queue)
		if err != nil {
			return fmt.Errorf("webhooks replay: %w", err)
		}
		replayed = n
	default:
		for _, id := range ids {
			if err := insp.RunTask(queue, id); err != nil {
				fmt.Fprintf(c.stdout, "replayed=%d\n", replayed)
				return fmt.Errorf("webhooks replay %s: %w", termsafe.String(id), err)
			}
			replayed++
		}
	}
	fmt.Fprintf(c.stdout, "replayed=%d\n", replayed)
	return nil
}

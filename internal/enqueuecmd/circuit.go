package enqueuecmd

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/cardimport/cardimport/internal/guard"
	"github.com/cardimport/cardimport/internal/termsafe"
)

const circuitAbout = `Shows the queue's circuit breaker to WeChat Pay, as every worker of the queue
sees it, on one line:

  circuit=closed failures=N rate_factor=F
  circuit=open since=TIME next_probe=D failures=N rate_factor=F cause="…" hint="…"

While it is open the workers call WeChat only to probe, and tasks wait
without spending retries; it closes by itself when a probe succeeds, e.g.
once the key named in the hint is fixed and the workers restarted.
rate_factor is the share of WECHATPAY_RATE_LIMIT in force: below 1 for a
few seconds after WeChat answered 429.`

func runCircuit(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "circuit", "[flags]", circuitAbout)
	if err := fs.parseNoArgs(args, "circuit"); err != nil {
		return err
	}
	cn, err := fs.connect(c)
	if err != nil {
		return err
	}
	defer cn.close()
	s, err := guard.ReadState(ctx, cn.rdb, cn.queue)
	if err != nil {
		return fmt.Errorf("circuit: %w", err)
	}
	fmt.Fprintln(c.stdout, termsafe.String(formatCircuit(s)))
	return nil
}

func formatCircuit(s guard.State) string {
	factor := strconv.FormatFloat(s.RateFactor, 'f', 2, 64)
	if !s.Open {
		return fmt.Sprintf("circuit=closed failures=%d rate_factor=%s", s.Failures, factor)
	}
	return fmt.Sprintf("circuit=open since=%s next_probe=%s failures=%d rate_factor=%s cause=%q hint=%q",
		s.Since.UTC().Format(time.RFC3339), s.NextProbe.Round(100*time.Millisecond), s.Failures, factor, s.Cause, s.Hint)
}

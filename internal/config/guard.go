package config

import (
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/cardimport/cardimport/internal/guard"
)

// DefaultRateLimit is WECHATPAY_RATE_LIMIT when unset. WeChat publishes no
// limit for the import endpoint; its sibling card-import APIs allow 5 to 10
// calls a second per merchant, so 10 stays at or under every limit known,
// and a merchant granted more raises it.
const DefaultRateLimit = 10.0

// Guard is the configuration of the shared rate limit and circuit breaker.
type Guard struct {
	// RateLimit is the fleet's calls a second to WeChat, shared through
	// Redis by every worker of the queue. From WECHATPAY_RATE_LIMIT or
	// --rate-limit; decimals allowed. Defaults to DefaultRateLimit.
	RateLimit float64
	// BreakerFailures is how many 5xx answers or timeouts in a row open
	// the circuit. Defaults to guard.DefaultFailureThreshold.
	BreakerFailures int
	// BreakerProbeInterval is how often one call probes WeChat while the
	// circuit is open. Defaults to guard.DefaultProbeInterval.
	BreakerProbeInterval time.Duration
}

// guardFlags registers the guard's flags on fs; check turns what they
// hold into a Guard.
type guardFlags struct {
	rate     *string
	failures *int
	probe    *time.Duration
}

func registerGuard(fs *flag.FlagSet, env func(string) string) guardFlags {
	return guardFlags{
		rate:     fs.String("rate-limit", orDefault(env("WECHATPAY_RATE_LIMIT"), strconv.FormatFloat(DefaultRateLimit, 'f', -1, 64)), "calls a second to WeChat Pay, shared by every worker of the queue (env WECHATPAY_RATE_LIMIT)"),
		failures: fs.Int("breaker-failures", guard.DefaultFailureThreshold, "5xx answers or timeouts in a row that open the circuit"),
		probe:    fs.Duration("breaker-probe-interval", guard.DefaultProbeInterval, "how often one call probes WeChat Pay while the circuit is open"),
	}
}

func (f guardFlags) check() (Guard, []error) {
	g := Guard{BreakerFailures: *f.failures, BreakerProbeInterval: *f.probe}
	var errs []error
	rate, err := strconv.ParseFloat(*f.rate, 64)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("WECHATPAY_RATE_LIMIT: %q is not a number of calls a second (e.g. 10 or 2.5)", *f.rate))
	case !(rate > 0) || rate > 1e6:
		errs = append(errs, fmt.Errorf("WECHATPAY_RATE_LIMIT: must be a positive number of calls a second, got %s", *f.rate))
	}
	g.RateLimit = rate
	if g.BreakerFailures < 1 {
		errs = append(errs, fmt.Errorf("--breaker-failures: must be at least 1, got %d", g.BreakerFailures))
	}
	if g.BreakerProbeInterval <= 0 {
		errs = append(errs, fmt.Errorf("--breaker-probe-interval: must be positive, got %s", g.BreakerProbeInterval))
	}
	return g, errs
}

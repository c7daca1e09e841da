// Package sandbox runs the WeChat Pay emulator of wechatpaytest as a
// process, because WeChat Pay offers no sandbox for the member-card import
// API: a merchant tries the product, rehearses an import or load-tests it
// against this instead of production. It writes the keys it accepts and an
// env file that points a worker at it, keeps those keys across restarts,
// and injects the faults its flags ask for. cmd/wechatpay-sandbox only
// calls Run.
package sandbox

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

// Config is how a sandbox runs.
type Config struct {
	// Addr is where it listens. Defaults to DefaultAddr.
	Addr string
	// Dir receives the merchant's keys, WeChat's public key and platform
	// certificate, the APIv3 key, WeChat's private keys and the env file.
	// Defaults to "sandbox".
	Dir string
	// BaseURL is the WECHATPAY_BASE_URL the env file names: how a worker
	// reaches the sandbox, e.g. http://sandbox:8090 inside docker-compose.
	// Defaults to http:// and the address it listens on.
	BaseURL string
	// Identity fixes the merchant number, certificate serial and public key
	// id of generated keys. Defaults to generated values.
	Identity Identity
	// TransientShare is the share (0 to 1) of out_request_nos whose first
	// attempt meets 500 SYSTEM_ERROR. Defaults to 0.
	TransientShare float64
	// RateLimit answers 429 RATELIMIT_EXCEEDED beyond this many requests
	// a second. Defaults to 0, no limit.
	RateLimit int
	// Latency delays every answer. Defaults to 0.
	Latency time.Duration
}

// DefaultAddr is where the sandbox listens unless told otherwise: loopback
// only, since it accepts anyone holding keys it wrote to disk.
const DefaultAddr = "127.0.0.1:8090"

// Run parses args (without the program name), then serves until ctx is
// cancelled and returns nil. flag.ErrHelp is returned for -h after the
// usage was written to stderr.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, ping, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if ping {
		return Ping(ctx, cfg.Addr)
	}
	return Serve(ctx, cfg, stdout)
}

func parseFlags(args []string, stderr io.Writer) (Config, bool, error) {
	fs := flag.NewFlagSet("wechatpay-sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(fs) }
	var cfg Config
	fs.StringVar(&cfg.Addr, "addr", DefaultAddr, "address to listen on")
	fs.StringVar(&cfg.Dir, "dir", "sandbox", "directory for the keys and the env file; keys found there are reused")
	fs.StringVar(&cfg.BaseURL, "base-url", "", "WECHATPAY_BASE_URL written in the env file (default http://ADDR)")
	fs.StringVar(&cfg.Identity.MchID, "mchid", "", "merchant number of new keys (default "+wechatpaytest.DefaultMchID+")")
	fs.StringVar(&cfg.Identity.MchCertSerial, "mch-cert-serial", "", "serial of the new merchant certificate, uppercase hex (default random)")
	fs.StringVar(&cfg.Identity.PublicKeyID, "public-key-id", "", "id of the new WeChat Pay public key, PUB_KEY_ID_… (default random)")
	fs.Float64Var(&cfg.TransientShare, "transient-share", 0, "share 0..1 of out_request_nos whose first attempt gets 500 SYSTEM_ERROR")
	fs.IntVar(&cfg.RateLimit, "rate-limit", 0, "answer 429 RATELIMIT_EXCEEDED beyond this many requests a second (0: none)")
	fs.DurationVar(&cfg.Latency, "latency", 0, "delay every answer by this much")
	ping := fs.Bool("ping", false, "check that a sandbox answers on --addr and exit 0, or 1 (for container health checks)")
	if err := fs.Parse(args); err != nil {
		return Config{}, false, err
	}
	if fs.NArg() > 0 {
		return Config{}, false, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var errs []error
	if cfg.TransientShare < 0 || cfg.TransientShare > 1 {
		errs = append(errs, fmt.Errorf("--transient-share: must be between 0 and 1, got %g", cfg.TransientShare))
	}
	if cfg.RateLimit < 0 {
		errs = append(errs, fmt.Errorf("--rate-limit: must not be negative, got %d", cfg.RateLimit))
	}
	if cfg.Latency < 0 {
		errs = append(errs, fmt.Errorf("--latency: must not be negative, got %s", cfg.Latency))
	}
	if err := cfg.Identity.check(); err != nil {
		errs = append(errs, err)
	}
	return cfg, *ping, errors.Join(errs...)
}

// usage documents the rules along with the flags: a merchant rehearsing an
// import needs to know which members will be refused and why.
func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprint(w, `Usage: wechatpay-sandbox [flags]

A WeChat Pay emulator of the member-card import API (WeChat offers no
sandbox for it). It writes into --dir the merchant's key and certificate,
the WeChat Pay public key, a platform certificate, an APIv3 key and an env
file of NAME=value lines that point a worker at it (public-key mode; the
other modes' variables are in it as comments). It checks every request's
signature like WeChat (401 SIGN_ERROR otherwise) and signs every answer.

Endpoints:
  POST /v3/marketing/membercard-open/cards/{card_id}/users/import
  GET  /v3/certificates   platform certificate, AES-256-GCM under the APIv3 key
  GET  /stats             counts as JSON: requests, imports, replays,
                          members, refusals by WeChat code

Rules that make an import fail for good (to rehearse each refusal):
  card_id starting pUNKNOWN     404 NOT_FOUND
  card_id starting pNOAUTH      403 NO_AUTH
  openid starting o_notrade_    400 INVALID_REQUEST (no WeChat Pay trade in a year)
  openid starting o_member_     400 INVALID_REQUEST 会员已经领取过该卡 (already a member)
  a code another member holds   400 INVALID_REQUEST (code taken)
  an out_request_no reused with other card, openid or code
                                400 INVALID_REQUEST
A repeated out_request_no with the same parameters answers the first
import again. Transient faults, the rate limit and latency come from flags.

Flags:
`)
	fs.PrintDefaults()
}

// Serve loads or makes the keys, writes them and the env file into
// cfg.Dir, and serves the emulator until ctx is cancelled; requests in
// flight then get 5 s to finish.
func Serve(ctx context.Context, cfg Config, stdout io.Writer) error {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Dir == "" {
		cfg.Dir = "sandbox"
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	keys, generated, err := loadOrGenerate(dir, cfg.Identity)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	defer ln.Close()
	baseURL := cfg.BaseURL
	if baseURL == "" {
		baseURL = "http://" + ln.Addr().String()
	}
	if _, err := keys.WriteDir(dir, baseURL); err != nil {
		return err
	}
	if err := saveWeChatSide(dir, keys); err != nil {
		return err
	}

	emu := wechatpaytest.New(keys,
		wechatpaytest.WithFirstAttemptFaults(cfg.TransientShare),
		wechatpaytest.WithRateLimit(cfg.RateLimit),
		wechatpaytest.WithLatency(cfg.Latency))
	srv := &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}

	origin := "reused from"
	if generated {
		origin = "generated in"
	}
	fmt.Fprintln(stdout, "wechatpay-sandbox: a WeChat Pay emulator for trials and load tests, not WeChat Pay; its keys are not real")
	fmt.Fprintf(stdout, "keys: %s %s (merchant %s)\n", origin, dir, keys.MchID)
	fmt.Fprintf(stdout, "env file: %s\n", filepath.Join(dir, wechatpaytest.FileEnv))
	fmt.Fprintf(stdout, "faults: transient share %g, rate limit %d/s (0: none), latency %s\n", cfg.TransientShare, cfg.RateLimit, cfg.Latency)
	fmt.Fprintf(stdout, "listening on http://%s (stats at /stats), worker base URL %s\n", ln.Addr(), baseURL)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	s := emu.Stats()
	fmt.Fprintf(stdout, "stopped: requests=%d imports=%d replays=%d members=%d refusals=%v\n", s.Requests, s.Imports, s.Replays, s.Members, s.Refusals)
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// Ping asks the sandbox on addr for its stats: nil when it answers 200.
// A listen address of 0.0.0.0 or [::] is reached on loopback.
func Ping(ctx context.Context, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/stats", nil)
	if err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("ping: %s answered %s", addr, res.Status)
	}
	return nil
}

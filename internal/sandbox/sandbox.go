// Package sandbox runs the WeChat Pay emulator of wechatpaytest as a
// process, because WeChat Pay offers no sandbox for the member-card import
// API: a merchant tries the product, rehearses an import or load-tests it
// against this instead of production. It writes the keys it accepts and an
// env file that points a worker at it, keeps those keys across restarts,
// injects the faults its flags ask for, and takes more at run time on
// /control/ routes (rotate the platform certificate, seed members holding
// cards, forge refusals, redirect). cmd/wechatpay-sandbox only calls Run.
package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rs/zerolog"

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
signature like WeChat (401 SIGN_ERROR otherwise) and, like WeChat, signs
every answer to a request it verified, refusals included (401 and 429 are
unsigned).

Endpoints:
  POST /v3/marketing/membercard-open/cards/{card_id}/users/import
  GET  /v3/marketing/membercard-open/user/cards?openid=…&offset=N&limit=M
                          the cards a member holds with their codes, pages
                          of at most 20 (offset is the page number from 0)
  GET  /v3/certificates   platform certificates, AES-256-GCM under the APIv3 key
  GET  /stats             counts as JSON: requests, imports, replays,
                          members, refusals by WeChat code, lists, …

Rules that make an import fail for good (to rehearse each refusal):
  card_id starting pUNKNOWN     404 NOT_FOUND
  card_id starting pNOAUTH      403 NO_AUTH
  openid starting o_notrade_    400 INVALID_REQUEST (no WeChat Pay trade in a year)
  openid starting o_member_     400 INVALID_REQUEST 用户已有已生效的会员卡 (holds
                                the card already; the list call shows it, with a code)
  a code another member holds   400 INVALID_REQUEST (code taken)
  an out_request_no reused with other card, openid or code
                                400 INVALID_REQUEST
A repeated out_request_no with the same parameters answers the first
import again. Transient faults, the rate limit and latency come from flags.

Control routes, unsigned, for load runs and rehearsals (anyone who reaches
the sandbox may call them: keep it on loopback or a private network):
  POST /control/rotate-platform-certificate
        a new platform certificate signs answers from now on; GET
        /v3/certificates lists old and new
  POST /control/seed?openid=…&card_id=…[&card_id=…]
        the member holds these cards (e.g. 25, to make a worker page)
  POST /control/forge-refusal?status=400&code=…&message=…[&n=1|&out_request_no=…]
        the next n import calls, or the next under out_request_no, get this
        error unsigned, as if forged on the way; nothing imported
  POST /control/redirect?status=302&location=…[&n=1|&out_request_no=…]
        the same with a 3xx to location, which WeChat never sends

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
	// The control handlers write their lines from their own goroutines.
	srv := &http.Server{Handler: withControl(emu, zerolog.SyncWriter(stdout)), ReadHeaderTimeout: 10 * time.Second}

	origin := "reused from"
	if generated {
		origin = "generated in"
	}
	fmt.Fprintln(stdout, "wechatpay-sandbox: a WeChat Pay emulator for trials and load tests, not WeChat Pay; its keys are not real")
	fmt.Fprintf(stdout, "keys: %s %s (merchant %s)\n", origin, dir, keys.MchID)
	fmt.Fprintf(stdout, "env file: %s\n", filepath.Join(dir, wechatpaytest.FileEnv))
	fmt.Fprintf(stdout, "faults: transient share %g, rate limit %d/s (0: none), latency %s\n", cfg.TransientShare, cfg.RateLimit, cfg.Latency)
	fmt.Fprintf(stdout, "listening on http://%s (stats at /stats, controls at /control/), worker base URL %s\n", ln.Addr(), baseURL)

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
	fmt.Fprintf(stdout, "stopped: requests=%d imports=%d replays=%d members=%d refusals=%v lists=%d forged_refusals=%d redirects=%d certificate_downloads=%d platform_rotations=%d\n",
		s.Requests, s.Imports, s.Replays, s.Members, s.Refusals, s.Lists, s.ForgedRefusals, s.Redirects, s.CertificateDownloads, s.PlatformRotations)
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

// withControl serves the /control/ routes, which change the emulator while
// it runs, and hands every other request to it. The routes are unsigned:
// they stand for what WeChat or the network does, not for a merchant's
// call. What they do is logged to out, never with an openid.
func withControl(emu *wechatpaytest.Emulator, out io.Writer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", emu)
	mux.HandleFunc("POST /control/rotate-platform-certificate", func(w http.ResponseWriter, _ *http.Request) {
		cert, err := emu.RotatePlatformCertificate()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		serial := fmt.Sprintf("%X", cert.SerialNumber.Bytes())
		fmt.Fprintf(out, "control: platform certificate rotated, answers now signed with %s\n", serial)
		var serials []string
		for _, c := range emu.PlatformCertificates() {
			serials = append(serials, fmt.Sprintf("%X", c.SerialNumber.Bytes()))
		}
		writeJSON(w, map[string]any{"serial": serial, "certificates": serials})
	})
	mux.HandleFunc("POST /control/seed", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		openid, cards := q.Get("openid"), q["card_id"]
		if openid == "" || len(cards) == 0 {
			http.Error(w, "seed: openid and at least one card_id are required", http.StatusBadRequest)
			return
		}
		emu.SeedCards(openid, cards...)
		codes := map[string]string{}
		for _, card := range cards {
			codes[card], _ = emu.HeldCode(card, openid)
		}
		fmt.Fprintf(out, "control: a member seeded with %d cards\n", len(cards))
		writeJSON(w, map[string]any{"codes": codes})
	})
	mux.HandleFunc("POST /control/forge-refusal", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		status, err := statusIn(q.Get("status"), 400, 599)
		if err != nil {
			http.Error(w, "forge-refusal: "+err.Error(), http.StatusBadRequest)
			return
		}
		scheduleIntercept(w, q, out, "forged refusal",
			func(no string) { emu.ForgeRefusalFor(no, status, q.Get("code"), q.Get("message")) },
			func(n int) { emu.ForgeRefusalNext(n, status, q.Get("code"), q.Get("message")) })
	})
	mux.HandleFunc("POST /control/redirect", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		status, err := statusIn(q.Get("status"), 300, 399)
		if err == nil && q.Get("location") == "" {
			err = errors.New("location is required")
		}
		if err != nil {
			http.Error(w, "redirect: "+err.Error(), http.StatusBadRequest)
			return
		}
		scheduleIntercept(w, q, out, "redirect",
			func(no string) { emu.RedirectFor(no, status, q.Get("location")) },
			func(n int) { emu.RedirectNext(n, status, q.Get("location")) })
	})
	return mux
}

// scheduleIntercept schedules a forged answer for the out_request_no the
// query names, or for the next n import calls (n defaults to 1).
func scheduleIntercept(w http.ResponseWriter, q map[string][]string, out io.Writer, what string, forNumber func(string), next func(int)) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if no := get("out_request_no"); no != "" {
		forNumber(no)
		fmt.Fprintf(out, "control: %s scheduled for the next attempt of one out_request_no\n", what)
		writeJSON(w, map[string]any{"scheduled": 1})
		return
	}
	n := 1
	if v := get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			http.Error(w, "n: a positive integer is required", http.StatusBadRequest)
			return
		}
	}
	next(n)
	fmt.Fprintf(out, "control: %s scheduled for the next %d import calls\n", what, n)
	writeJSON(w, map[string]any{"scheduled": n})
}

// statusIn parses an HTTP status and checks it is within [lo, hi].
func statusIn(v string, lo, hi int) (int, error) {
	status, err := strconv.Atoi(v)
	if err != nil || status < lo || status > hi {
		return 0, fmt.Errorf("status must be from %d to %d, got %q", lo, hi, v)
	}
	return status, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

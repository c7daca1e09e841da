package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cardimport/cardimport/internal/config"
	"github.com/cardimport/cardimport/internal/wechatpay"
)

// checkTimeout bounds `worker check`: one call, a certificate download in
// auto-download mode, and the backup host.
const checkTimeout = 30 * time.Second

// ErrCheckFailed is returned by Check when any part of the preflight failed;
// the lines it printed name the part and the hint.
var ErrCheckFailed = errors.New("check failed: see the lines above")

// Check runs `worker check`: with the worker's own configuration, one
// harmless signed call to WeChat Pay (the card list of a placeholder
// openid), and one line for each of: the request signature, the answer's
// verification and by which key, the clock offset from WeChat's Date
// header, and the rate limit and key mode in force. It returns nil when all
// is well and ErrCheckFailed otherwise; a configuration error is returned
// as it is.
func Check(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	cfg, ok, err := load(args, env, stderr)
	if !ok {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	client, err := wechatpay.NewClient(ctx, cfg.WeChat)
	if err != nil {
		return err
	}
	defer client.Close()
	r := client.Check(ctx)
	printCheck(stdout, cfg, client.Mode(), r)
	if !r.OK() {
		return ErrCheckFailed
	}
	return nil
}

func printCheck(w io.Writer, cfg config.Worker, mode wechatpay.Mode, r wechatpay.CheckReport) {
	base := cfg.WeChat.BaseURL
	if base == "" {
		base = wechatpay.DefaultBaseURL
	}
	fmt.Fprintf(w, "wechat pay: %s\n", base)
	switch {
	case !r.Answered:
		fmt.Fprintf(w, "request signature: FAIL no answer: %v\n", r.Err)
	case !r.SignatureAccepted && r.Refusal != "":
		fmt.Fprintf(w, "request signature: FAIL refused (%s); hint: check WECHATPAY_MCH_PRIVATE_KEY_FILE matches WECHATPAY_MCH_CERT_SERIAL and WECHATPAY_MCHID, and this host's clock\n", r.Refusal)
	case !r.SignatureAccepted:
		fmt.Fprintf(w, "request signature: FAIL not judged (http %d): %v\n", r.Status, r.VerifyErr)
	default:
		fmt.Fprintf(w, "request signature: ok, accepted (http %d, request_id %s)\n", r.Status, r.RequestID)
	}
	switch {
	case r.Verified:
		fmt.Fprintf(w, "answer signature: ok, verified with %s\n", r.Serial)
	case r.Answered:
		fmt.Fprintf(w, "answer signature: FAIL not verified (signed with %q): %v; hint: %s\n", r.Serial, r.VerifyErr, wechatpay.HintUnverified)
	}
	switch {
	case !r.HasDate:
		fmt.Fprintln(w, "clock: unknown, the answer had no Date header")
	case r.ClockOffset.Abs() >= 5*time.Minute:
		fmt.Fprintf(w, "clock: FAIL %s off WeChat's; WeChat refuses requests more than 5m off: fix this host's time (NTP)\n", r.ClockOffset.Round(time.Second))
	default:
		fmt.Fprintf(w, "clock: ok, %s from WeChat's (whole seconds)\n", r.ClockOffset.Round(time.Second))
	}
	fmt.Fprintf(w, "rate limit: %g requests a second, shared by every worker of queue %q (WECHATPAY_RATE_LIMIT)\n", cfg.Guard.RateLimit, cfg.Queue)
	fmt.Fprintf(w, "key mode: %s\n", mode)
	if r.OK() {
		fmt.Fprintln(w, "check: ok")
	} else {
		fmt.Fprintln(w, "check: FAIL")
	}
}

// Command wechatpay-sandbox is a WeChat Pay emulator of the member-card
// import API as a process, for trials, the demo, docker-compose and load
// tests. The logic is in internal/sandbox; `wechatpay-sandbox -h` lists
// its flags and the rules that trigger each refusal.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/cardimport/cardimport/internal/sandbox"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := sandbox.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "wechatpay-sandbox:", err)
		os.Exit(1)
	}
}

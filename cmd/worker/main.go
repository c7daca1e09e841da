// Command worker imports members into WeChat Pay member cards from the
// asynq queue in Redis. See README.md for its configuration.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/cardimport/cardimport/internal/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := worker.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		// Configuration errors come all at once, one a line.
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(os.Stderr, "worker:", line)
		}
		stop()
		os.Exit(1)
	}
}

// Command worker imports members into WeChat Pay member cards from the
// asynq queue in Redis. See README.md for its configuration; `worker
// --demo` runs the whole product in one process with nothing to set up.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/cardimport/cardimport/internal/demo"
	"github.com/cardimport/cardimport/internal/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	run := func() error { return worker.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr) }
	if demo.Requested(os.Args[1:]) {
		// The demo needs no environment: it brings its own Redis and sandbox.
		run = func() error { return demo.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr) }
	}
	if err := run(); err != nil {
		// Configuration errors come all at once, one a line.
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(os.Stderr, "worker:", line)
		}
		stop()
		os.Exit(1)
	}
}

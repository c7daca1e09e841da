// Command enqueue puts member-card imports into the queue: `enqueue one`
// for a single member, `enqueue file` for a CSV or JSON-lines file,
// `enqueue serve` for the HTTP intake. The logic is in internal/enqueuecmd;
// `enqueue -h` lists the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/cardimport/cardimport/internal/enqueuecmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal asks the command to stop cleanly and print what it
	// did; restoring the default handling lets a second one end it at
	// once, should it be stuck reading a terminal.
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := enqueuecmd.Run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

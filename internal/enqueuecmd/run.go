// Package enqueuecmd is the enqueue command: the producer and operator tool
// that puts members into the import queue, one at a time, from a member
// file, or through the HTTP intake it serves. cmd/enqueue only hands it the
// process's arguments, environment and standard streams, so that tests can
// run it whole against a test Redis.
//
// Each subcommand lives in a file of its own and registers in commands.
// It returns an error, which Run alone prints and turns into the exit
// status (exit.go); flags that several of them share (where Redis is, the
// task options) are in flags.go, and the one way they reach Redis in
// conn.go.
package enqueuecmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	redislogging "github.com/redis/go-redis/v9/logging"

	"github.com/cardimport/cardimport/internal/termsafe"
)

// command is one subcommand of enqueue.
type command struct {
	name    string
	summary string
	// run runs the command; only Run turns its error into a status
	// (exitCode) and prints it.
	run func(ctx context.Context, c *cli, args []string) error
}

// commands are the subcommands, in the order usage lists them.
var commands = []command{
	{name: "one", summary: "enqueue the import of one member", run: runOne},
	{name: "file", summary: "enqueue the import of every member in a CSV or JSON-lines file", run: runFile},
	{name: "serve", summary: "serve the HTTP intake: POST /v1/imports enqueues members", run: runServe},
	{name: "status", summary: "show where the import of one out_request_no stands", run: runStatus},
	{name: "dead", summary: "list (dead list) or replay (dead replay) imports that failed for good", run: runDead},
	{name: "circuit", summary: "show the circuit breaker and rate slowdown the workers share", run: runCircuit},
	{name: "runs", summary: "list runs, show one's counts (runs show ID) or wait for one to settle (runs wait ID)", run: runRuns},
	{name: "results", summary: "export the members' outcomes (results export) or follow them as they come (results follow)", run: runResults},
	{name: "webhooks", summary: "show the webhook deliveries, list the dead ones (webhooks dead) or put them back (webhooks replay)", run: runWebhooks},
}

// cli is what a subcommand may touch of the process.
type cli struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// writeJSON writes v as one JSON line. encoding/json escapes control
// characters below U+0020 but leaves DEL, C1 controls and bidi overrides,
// which termsafe.JSON escapes, so a record piped to a terminal is as safe
// as the table.
func writeJSON(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(termsafe.JSON(append(data, '\n')))
	return err
}

// Run runs the enqueue command with args (without the program name) and
// returns its exit code: 0 when all went well, 1 on a failure (a usage
// error, Redis unreachable, a file that cannot be read, Ctrl-C), 2 when a
// member was refused as invalid while the valid ones were enqueued, 3 when
// the run waited for settled with members dead. Configuration comes from
// getenv (REDIS_URL, QUEUE), flags override it. Nothing it prints on stdout or
// stderr shows a member's openid, a secret from the environment, or a
// control character taken from Redis or a file.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	// go-redis logs each failed dial on its own; the command reports the
	// failure once, as an "enqueue: …" line.
	redislogging.Disable()
	c := &cli{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		c.usage()
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		c.usage()
		return exitOK
	}
	for _, cmd := range commands {
		if cmd.name == args[0] {
			return c.exit(cmd.run(ctx, c, args[1:]))
		}
	}
	return c.exit(fmt.Errorf("unknown command %q (enqueue -h lists them)", args[0]))
}

func (c *cli) usage() {
	var b strings.Builder
	b.WriteString("usage: enqueue COMMAND [flags] [ARGS]\n\nPuts member-card imports into the import queue.\n\ncommands:\n")
	width := 0
	for _, cmd := range commands {
		width = max(width, len(cmd.name))
	}
	for _, cmd := range commands {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, cmd.name, cmd.summary)
	}
	b.WriteString("\nenqueue COMMAND -h shows a command's flags.\n")
	b.WriteString(envHelp)
	b.WriteString(exitHelp)
	fmt.Fprint(c.stderr, b.String())
}

const envHelp = `
environment:
  REDIS_URL     the Redis to enqueue into: redis://host:port/db, rediss://...,
                redis-sentinel://... (--redis-url overrides it)
  QUEUE         the queue to enqueue into (--queue overrides it)
  INTAKE_TOKEN  bearer token requests to enqueue serve must carry (at least
                16 bytes unless serve listens on loopback)
  INTAKE_ALLOWED_HOSTS
                host names, comma-separated, that requests to enqueue serve
                may name in their Host header besides its address and
                loopback (e.g. the name of a proxy in front of it)
`

const exitHelp = `
exit status:
  0  done
  1  failure: a usage error, Redis unreachable, a file that cannot be read
     or has no usable header, interrupted
  2  a member (a row of the file) was invalid; the valid ones were enqueued
  3  with --wait, or runs wait: the run settled with members dead
`

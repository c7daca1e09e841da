package enqueuecmd

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cardimport/cardimport/internal/termsafe"
)

// Exit codes, as docs/contracts.md fixes them for `enqueue file`: 2 says a
// member was refused as invalid while the valid ones were enqueued, so a usage
// error, which enqueued nothing, is a failure (1) like any other.
const (
	exitOK      = 0
	exitFailure = 1
	exitInvalid = 2
	exitUsage   = exitFailure
)

// exitDead is the status of `--wait` and `runs wait` when the run settled
// with members dead: every member has an end, but some need an operator
// (enqueue dead list, enqueue dead replay).
const exitDead = 3

// exitError ends a command with an exit code other than the 1 of a plain
// error: err, when not nil, is printed as a plain error would be.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// withCode returns an error that ends the command with code after printing
// err; a nil err prints nothing (what was to say is said).
func withCode(code int, err error) error { return &exitError{code: code, err: err} }

var (
	// errHelp ends a command that printed its usage for -h: exit 0.
	errHelp = withCode(exitOK, nil)
	// errUsage ends a command whose usage error is already reported (by
	// the flag set, or with the usage printed): exit 1.
	errUsage = withCode(exitUsage, nil)
)

// exitCode is the status err ends a command with: 0 for nil, the code of
// an exitError, 1 for any other error.
func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	}
	return exitFailure
}

// exit prints err, if it has something to say, and returns the status it
// ends the command with: the one place a command's error becomes both.
func (c *cli) exit(err error) int {
	code := exitCode(err)
	if ee, ok := err.(*exitError); ok {
		err = ee.err
	}
	if err != nil {
		c.warnf("%v", err)
	}
	return code
}

// report prints err now, if it has something to say, and returns what ends
// the command with err's status saying nothing more: for a command whose
// summary line is to come after its error, as the last line of its output.
func (c *cli) report(err error) error {
	if err == nil {
		return nil
	}
	return withCode(c.exit(err), nil)
}

// warnf prints a message on standard error, "enqueue: " before each of its
// lines: a command's error (through exit), or a warning that does not end
// it. Messages quote what Redis, a file or a flag held (an out_request_no,
// a dead letter's message), so each line goes through termsafe.String: no
// control character reaches the terminal.
func (c *cli) warnf(format string, args ...any) {
	for _, line := range strings.Split(fmt.Sprintf(format, args...), "\n") {
		fmt.Fprintf(c.stderr, "enqueue: %s\n", termsafe.String(line))
	}
}

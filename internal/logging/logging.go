// Package logging builds the zerolog loggers of the worker and the CLI and
// holds the one masking rule for personal data, so that no log line, error
// or dashboard view shows a member's openid.
package logging

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
)

func init() {
	zerolog.TimeFieldFormat = time.RFC3339Nano
	zerolog.DurationFieldUnit = time.Millisecond
}

// New returns a JSON logger writing to w at the given level ("debug",
// "info", "warn", "error"; empty means info). An unknown level is an error
// naming it.
func New(w io.Writer, level string) (zerolog.Logger, error) {
	lvl := zerolog.InfoLevel
	if level != "" {
		var err error
		if lvl, err = zerolog.ParseLevel(strings.ToLower(level)); err != nil {
			return zerolog.Nop(), fmt.Errorf("log level: unknown level %q (debug, info, warn, error)", level)
		}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// MaskOpenID hides the middle of an openid: enough stays to tell members
// apart in an operator's view (first and last four characters), not enough
// to identify the person. Short values are hidden whole.
func MaskOpenID(openid string) string {
	n := utf8.RuneCountInString(openid)
	if n == 0 {
		return ""
	}
	if n <= 12 {
		return strings.Repeat("*", 4)
	}
	r := []rune(openid)
	return string(r[:4]) + "****" + string(r[n-4:])
}

// MaskOpenIDIn masks every occurrence of openid in s, for texts that
// may quote it: WeChat's error messages, a task's last error. Occurrences
// in another letter case are masked too: a message that echoes the openid
// upper- or lower-cased still names the member. Matching follows Unicode
// case folding, so even a Kelvin sign standing for a 'k' is caught. It
// runs on error paths only, where compiling a pattern costs nothing that
// matters.
func MaskOpenIDIn(s, openid string) string {
	if openid == "" {
		return s
	}
	if !utf8.ValidString(openid) {
		// No pattern matches bytes that are not UTF-8; no validated
		// openid holds them.
		return strings.ReplaceAll(s, openid, MaskOpenID(openid))
	}
	re := regexp.MustCompile("(?i)" + regexp.QuoteMeta(openid))
	return re.ReplaceAllLiteralString(s, MaskOpenID(openid))
}

// Package termsafe makes text from outside safe to print on an operator's
// terminal. Card ids, WeChat's messages, last errors and dead letters come
// from Redis, which anyone who can write to it fills: printed raw, an ESC
// or OSC sequence in them recolours the terminal, retitles it, rewrites
// what is on screen or, on some terminals, writes to the clipboard, and a
// bidi override makes a line read other than it is. Every human-readable
// output of the CLI goes through String; JSON output through JSON.
package termsafe

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// String returns s with every character that is not graphic replaced by
// its Go escape: C0 controls (ESC, BEL, tab, line breaks…), DEL, C1
// controls (CSI U+009B…), format characters (bidi overrides and isolates,
// zero-width characters), line and paragraph separators, private-use and
// unassigned code points, and bytes that are not UTF-8 (as \xff). Letters,
// marks, digits, punctuation, symbols and spaces of every script stay, so
// WeChat's Chinese messages read as they are. A backslash stays a
// backslash: an escape String writes can be told from one that was there
// only by context, which is enough for a reader and harmless to a
// terminal.
func String(s string) string {
	if !strings.ContainsFunc(s, unsafe) && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unsafe(r):
			b.WriteString(escape(r))
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// JSON returns the output of encoding/json with the characters String
// escapes that encoding/json leaves (DEL, C1 controls, bidi and other
// format characters) written as \u escapes, which JSON readers decode to
// the same text. data must be encoding/json's output: valid UTF-8, with
// control characters below U+0020 already escaped.
func JSON(data []byte) []byte {
	if !strings.ContainsFunc(string(data), unsafeInJSON) {
		return data
	}
	out := make([]byte, 0, len(data)+16)
	for _, r := range string(data) {
		switch {
		case !unsafeInJSON(r):
			out = utf8.AppendRune(out, r)
		case r > 0xffff:
			hi, lo := utf16.EncodeRune(r)
			out = fmt.Appendf(out, `\u%04x\u%04x`, hi, lo)
		default:
			out = fmt.Appendf(out, `\u%04x`, r)
		}
	}
	return out
}

// unsafeInJSON is unsafe for what encoding/json leaves: below DEL it has
// escaped every control character in a string, and the rest is JSON's
// own white space (the newline that ends a line, say).
func unsafeInJSON(r rune) bool { return r >= 0x7f && unsafe(r) }

// unsafe says whether a terminal may take r for something other than a
// character to show. Spaces are graphic; so is U+FFFD.
func unsafe(r rune) bool {
	return !unicode.IsGraphic(r)
}

// escape writes r, a character that is not graphic, as Go would quote it:
// \t, \n, \x1b, \u202e, \U000e0001 (strconv.QuoteRune without its quotes).
func escape(r rune) string {
	q := strconv.QuoteRune(r)
	return q[1 : len(q)-1]
}

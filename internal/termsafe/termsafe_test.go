package termsafe_test

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/termsafe"
)

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{name: "plain", in: "pbLatjvWOibDc5-TBnbUk1pD12o0", want: "pbLatjvWOibDc5-TBnbUk1pD12o0"},
		{name: "chinese and spaces", in: "卡券不存在 (no such card)\u3000ok", want: "卡券不存在 (no such card)\u3000ok"},
		{name: "colour", in: "p\x1b[31mred\x1b[0m", want: `p\x1b[31mred\x1b[0m`},
		{name: "title by OSC", in: "\x1b]0;pwned\a", want: `\x1b]0;pwned\a`},
		{name: "OSC 52 clipboard", in: "\x1b]52;c;cm0gLXJmIH4=\x1b\\", want: `\x1b]52;c;cm0gLXJmIH4=\x1b\`},
		{name: "line breaks and tab", in: "a\r\nb\tc", want: `a\r\nb\tc`},
		{name: "DEL", in: "a\x7fb", want: `a\x7fb`},
		{name: "C1 CSI", in: "a\u009b31mb", want: `a\u009b31mb`},
		{name: "bidi override", in: "abc\u202edcb", want: `abc\u202edcb`},
		{name: "bidi isolate", in: "a\u2066b\u2069", want: `a\u2066b\u2069`},
		{name: "zero-width", in: "o\u200bx\ufeff", want: `o\u200bx\ufeff`},
		{name: "line separator", in: "a\u2028b", want: `a\u2028b`},
		{name: "tag character", in: "a\U000e0041", want: `a\U000e0041`},
		{name: "bad UTF-8", in: "a\xff\xc3", want: `a\xff\xc3`},
		{name: "replacement character stays", in: "a\ufffdb", want: "a\ufffdb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, termsafe.String(tt.in))
		})
	}
}

func TestJSON(t *testing.T) {
	t.Parallel()
	in := map[string]string{"message": "a\u009b31m\u202eb\x7f\U000e0041\x1b卡\n"}
	data, err := json.Marshal(in)
	require.NoError(t, err)
	data = append(data, '\n')
	got := termsafe.JSON(data)
	require.Equal(t, `{"message":"a\u009b31m\u202eb\u007f\udb40\udc41\u001b卡\n"}`+"\n", string(got))
	var back map[string]string
	require.NoError(t, json.Unmarshal(got, &back))
	require.Equal(t, in, back, "a JSON reader reads the same text")
}

// safe says whether every character of s prints as itself on a terminal.
func safe(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsGraphic(r) {
			return false
		}
	}
	return true
}

// FuzzString: whatever it is given, String and JSON return text that
// prints as itself, String leaves safe text alone, and JSON keeps what a
// JSON reader decodes.
func FuzzString(f *testing.F) {
	f.Add("p\x1b[31mred")
	f.Add("abc\u202e\u009b\xff卡券")
	f.Fuzz(func(t *testing.T, s string) {
		got := termsafe.String(s)
		// U+FFFD is graphic; safe refuses it only to catch bad UTF-8.
		require.True(t, safe(strings.ReplaceAll(got, "\ufffd", "")), "%q", got)
		if safe(s) && utf8.ValidString(s) {
			require.Equal(t, s, got, "text that is safe is left alone")
		}
		data, err := json.Marshal(s)
		require.NoError(t, err)
		escaped := termsafe.JSON(data)
		require.True(t, safe(strings.ReplaceAll(string(escaped), "\ufffd", "")), "%s", escaped)
		var back string
		require.NoError(t, json.Unmarshal(escaped, &back))
		var want string
		require.NoError(t, json.Unmarshal(data, &want))
		require.Equal(t, want, back)
	})
}

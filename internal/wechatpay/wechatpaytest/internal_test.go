package wechatpaytest

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sdkHeader is an Authorization header as wechatpay-go writes it.
const sdkHeader = `WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",signature="uOVRnA4qG/MNnYzdQxJanN+zU+lTgIcnU9BxGw5dKjK+VdEUz2FeIoC+D5sB/LN+nGzX3hfZg6r5wT1pl2ZobmIc6p0ldN7J6yDgUzbX8Uk3sD4a4eZVPTBvqNDoUqcYMlZ9uuDdCvNv4TM3c1WzsXUrExwVkI1XO5jCNbgDJ25nkT/c1gIFvqoogl7MdSFGc4W4xZsqCItnqbypR3RuGIlR9h9vlRsy7zJR9PBI83X8alLDIfR1ukt1P7tMnmogZ0cuDY8cZsd8ZlCgLadmvej58SLsIkVxFJ8XyUgx9FmutKSYTmYtWBZ0+tNvfGmbXU7cob8H/4nLBiCwIUFluw=="`

func TestParseAuthorization(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		header  string
		want    authorization
		wantErr string
	}{
		{name: "as the SDK writes it", header: sdkHeader, want: authorization{MchID: "1900000001", NonceStr: "593BEC0C930BF1AFEB40B4A08C8FB242", Timestamp: "1554208460", SerialNo: "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C", Signature: strings.Split(sdkHeader, `signature="`)[1][:344]}},
		{name: "any order, spaces, unknown field", header: `WECHATPAY2-SHA256-RSA2048  signature="s" , x="y",timestamp="1",serial_no="S",nonce_str="n",mchid="m"`, want: authorization{MchID: "m", NonceStr: "n", Timestamp: "1", SerialNo: "S", Signature: "s"}},
		{name: "empty", header: "", wantErr: "missing"},
		{name: "other scheme", header: strings.Replace(sdkHeader, "RSA2048", "RSA4096", 1), wantErr: "scheme"},
		{name: "no fields", header: "WECHATPAY2-SHA256-RSA2048", wantErr: "mchid missing"},
		{name: "field missing", header: `WECHATPAY2-SHA256-RSA2048 mchid="m",nonce_str="n",timestamp="1",serial_no="S"`, wantErr: "signature missing"},
		{name: "empty value", header: `WECHATPAY2-SHA256-RSA2048 mchid="",nonce_str="n",timestamp="1",serial_no="S",signature="s"`, wantErr: "mchid missing"},
		{name: "duplicate", header: `WECHATPAY2-SHA256-RSA2048 mchid="m",mchid="m",nonce_str="n",timestamp="1",serial_no="S",signature="s"`, wantErr: "twice"},
		{name: "unquoted", header: `WECHATPAY2-SHA256-RSA2048 mchid=m`, wantErr: "not quoted"},
		{name: "unterminated", header: `WECHATPAY2-SHA256-RSA2048 mchid="m`, wantErr: "closing quote"},
		{name: "no comma", header: `WECHATPAY2-SHA256-RSA2048 mchid="m" nonce_str="n"`, wantErr: "comma"},
		{name: "no =", header: `WECHATPAY2-SHA256-RSA2048 mchid`, wantErr: "key=\"value\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseAuthorization(tt.header)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), "uOVRnA4q", "errors never quote the signature")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// FuzzParseAuthorization: the parser never panics, accepts only complete
// headers, and reads back any header it accepted once written in the SDK's
// canonical form.
func FuzzParseAuthorization(f *testing.F) {
	f.Add(sdkHeader)
	f.Add(`WECHATPAY2-SHA256-RSA2048 signature="s", serial_no="S",timestamp="1",nonce_str="n",mchid="m"`)
	f.Add(`WECHATPAY2-SHA256-RSA2048 mchid="m",mchid="m"`)
	f.Add(`WECHATPAY2-SHA256-RSA2048 ="",,`)
	f.Add("WECHATPAY2-SHA256-RSA2048 \x00=\"\"")
	f.Fuzz(func(t *testing.T, header string) {
		a, err := parseAuthorization(header)
		if err != nil {
			return
		}
		for _, v := range []string{a.MchID, a.NonceStr, a.Timestamp, a.SerialNo, a.Signature} {
			if v == "" || strings.Contains(v, `"`) {
				t.Fatalf("accepted a field that is empty or holds a quote: %+v", a)
			}
		}
		canonical := fmt.Sprintf(`%s mchid="%s",nonce_str="%s",timestamp="%s",serial_no="%s",signature="%s"`, authScheme, a.MchID, a.NonceStr, a.Timestamp, a.SerialNo, a.Signature)
		again, err := parseAuthorization(canonical)
		if err != nil {
			t.Fatalf("canonical form of an accepted header refused: %v", err)
		}
		if again != a {
			t.Fatalf("canonical form reads back as %+v, want %+v", again, a)
		}
	})
}

func TestFirstAttemptShare(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		share float64
	}{
		{"none", 0}, {"a tenth", 0.1}, {"half", 0.5}, {"all", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const n = 20000
			hit := 0
			for i := range n {
				if chosen(fmt.Sprintf("1900000001-20240601-%06d", i), tt.share) {
					hit++
				}
			}
			require.InDelta(t, tt.share, float64(hit)/n, 0.02)
			require.Equal(t, chosen("same", tt.share), chosen("same", tt.share), "the choice is deterministic")
		})
	}
}

func TestWindowLimiter(t *testing.T) {
	t.Parallel()
	start := time.Unix(1_700_000_000, 0)
	l := newWindowLimiter(3)
	tests := []struct {
		name string
		at   time.Duration
		want bool
	}{
		{"1st", 0, true},
		{"2nd", 100 * time.Millisecond, true},
		{"3rd", 200 * time.Millisecond, true},
		{"4th within the second", 999 * time.Millisecond, false},
		{"a second after the 1st", time.Second, true},
		{"still within the 2nd's second", 1050 * time.Millisecond, false},
		{"a second after the 2nd", 1100 * time.Millisecond, true},
		{"a second after the 3rd", 1200 * time.Millisecond, true},
		{"after a pause", 5 * time.Second, true},
	}
	// In order: each step depends on the ones before.
	for _, tt := range tests {
		require.Equal(t, tt.want, l.allow(start.Add(tt.at)), tt.name)
	}
}

// TestRandomStringIsUniform: every character of each alphabet comes up,
// about as often as any other, and only characters of the alphabet. 10
// does not divide 256, so a draw of byte%10 would favour 0-5 by 4%: over
// 2,000,000 digits 0-5 then come up 7 standard deviations too often, and
// the test allows 6.
func TestRandomStringIsUniform(t *testing.T) {
	for _, alphabet := range []string{digits, upperHex, alphanumerics} {
		counts := map[rune]int{}
		const n = 2_000_000
		for range n / 40 {
			s := randomString(alphabet, 40)
			if len(s) != 40 {
				t.Fatalf("len %d, want 40", len(s))
			}
			for _, c := range s {
				counts[c]++
			}
		}
		if len(counts) != len(alphabet) {
			t.Fatalf("%d distinct characters of %q, want %d", len(counts), alphabet, len(alphabet))
		}
		want := float64(n) / float64(len(alphabet))
		for c, got := range counts {
			if !strings.ContainsRune(alphabet, c) {
				t.Fatalf("%q is not in %q", c, alphabet)
			}
			if math.Abs(float64(got)-want) > 6*math.Sqrt(want) {
				t.Errorf("%q drawn %d times, want about %.0f", c, got, want)
			}
		}
	}
}

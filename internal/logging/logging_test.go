package logging_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/logging"
)

func TestMaskOpenID(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, openid, want string }{
		{name: "typical", openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", want: "oUpF****eS6o"},
		{name: "short hidden whole", openid: "o123456789ab", want: "****"},
		{name: "empty", openid: "", want: ""},
		{name: "multibyte", openid: "会员会员会员会员会员会员会员", want: "会员会员****会员会员"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, logging.MaskOpenID(tt.openid))
		})
	}
}

func TestNewRejectsUnknownLevel(t *testing.T) {
	t.Parallel()
	_, err := logging.New(&bytes.Buffer{}, "loud")
	require.EqualError(t, err, `log level: unknown level "loud" (debug, info, warn, error)`)
}

func ExampleMaskOpenID() {
	fmt.Println(logging.MaskOpenID("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"))
	// Output: oUpF****eS6o
}

// FuzzMaskOpenIDIn: every occurrence of an openid, in any letter case, is
// masked.
func FuzzMaskOpenIDIn(f *testing.F) {
	f.Add("openid OUPF8UMUAJO_M2PXB1Q9ZNJWES6O is not bound", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
	f.Add("o\u212aq1", "okq1")
	f.Fuzz(func(t *testing.T, s, openid string) {
		got := logging.MaskOpenIDIn(s, openid)
		// Openids are ASCII, and for ASCII text ToLower is the folding
		// that matters: masking in any case is masking the lower-cased
		// text exactly.
		if isASCII(s) && isASCII(openid) && openid != "" {
			lower := strings.ToLower
			require.Equal(t, strings.ReplaceAll(lower(s), lower(openid), lower(logging.MaskOpenID(openid))), lower(got))
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func TestMaskOpenIDIn(t *testing.T) {
	t.Parallel()
	const openid = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
	tests := []struct {
		name, s, openid, want string
	}{
		{name: "every occurrence", s: "openid " + openid + " is not bound; " + openid, openid: openid, want: "openid oUpF****eS6o is not bound; oUpF****eS6o"},
		{name: "absent", s: "no such card", openid: openid, want: "no such card"},
		{name: "no openid to mask", s: "text", openid: "", want: "text"},
		// WeChat's message may echo the openid in another case.
		{name: "upper case", s: "openid " + strings.ToUpper(openid) + " is not bound", openid: openid, want: "openid oUpF****eS6o is not bound"},
		{name: "lower case", s: "用户" + strings.ToLower(openid) + "不存在", openid: openid, want: "用户oUpF****eS6o不存在"},
		{name: "mixed cases, twice", s: strings.ToUpper(openid) + "/" + strings.ToLower(openid) + "/" + openid, openid: openid, want: "oUpF****eS6o/oUpF****eS6o/oUpF****eS6o"},
		{name: "Kelvin sign for k", s: "o\u212aq1-x", openid: "okq1-x", want: "****"},
		{name: "regexp characters are literal", s: "o.1 oa1", openid: "o.1", want: "**** oa1"},
		{name: "a prefix is not the openid", s: "oUpF8uMuAJO", openid: openid, want: "oUpF8uMuAJO"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, logging.MaskOpenIDIn(tt.s, tt.openid))
		})
	}
}

// TestGoRedisLinesJoinTheJSONLog: go-redis's pool lines come out as JSON
// at debug level, so a worker at info level does not print one per failed
// dial while Redis restarts.
func TestGoRedisLinesJoinTheJSONLog(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log, err := logging.New(&buf, "debug")
	require.NoError(t, err)
	logging.NewGoRedisLogger(log).Printf(t.Context(), "redis: connection pool: failed to dial after %d attempts: %v\n", 5, "connection refused")
	var line map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &line), buf.String())
	require.Equal(t, "debug", line["level"])
	require.Equal(t, "go-redis", line["component"])
	require.Equal(t, "redis: connection pool: failed to dial after 5 attempts: connection refused", line["message"])

	buf.Reset()
	quiet, err := logging.New(&buf, "info")
	require.NoError(t, err)
	logging.NewGoRedisLogger(quiet).Printf(t.Context(), "dial failed")
	require.Empty(t, buf.String())
}

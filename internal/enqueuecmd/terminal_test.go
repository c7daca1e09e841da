package enqueuecmd

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/internal/importer"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/wechatpay"
)

// hostile holds what an ESC, OSC, C1 or bidi sequence in Redis would do to
// the terminal that prints it raw: retitle it, recolour it, write to its
// clipboard, clear it, reverse a line.
const hostile = "\x1b]0;pwned\a\x1b[31mred\x1b]52;c;cm0gLXJmIH4=\x1b\\\u009b2J\u202edilav\x7f\tfake\ncolumn"

// TestOutputEscapesControlCharacters: a dead letter whose card id, WeChat
// message and out_request_no hold terminal control sequences (anyone who
// can write to Redis can put one there) is listed, shown and named in
// errors with every control character escaped; the JSON outputs carry
// them as \u escapes, which decode to the same text.
func TestOutputEscapesControlCharacters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := b.store(t)
	no := "1900000001-20261128-term01"
	payload, err := json.Marshal(map[string]string{"card_id": "p" + hostile, "openid": rawOpenID + "00001", "out_request_no": no})
	require.NoError(t, err)
	werr := &wechatpay.Error{Kind: wechatpay.KindPermanent, StatusCode: 400, Code: "INVALID\x1b[2J", Message: "卡券" + hostile, RequestID: "08F1\x1b[0m"}
	rec := deadletter.FromFailure(no, payload, 1, importer.Refused(werr), time.Now())
	require.NoError(t, s.Record(testkit.Context(t), rec))
	// A dead letter whose out_request_no itself is hostile, named in an
	// error when its payload cannot be replayed.
	badNo := "n\x1b]0;pwned\a"
	require.NoError(t, s.Record(testkit.Context(t), deadletter.FromFailure(badNo, []byte(`{"card_id":"p1"}`), 1, fmt.Errorf("payload rejected: %w", asynq.SkipRetry), time.Now())))

	runs := map[string]result{
		"dead list":        b.dead(t, "list"),
		"dead list --json": b.dead(t, "list", "--json"),
		"dead replay":      b.dead(t, "replay", badNo),
		"status":           b.run(t, nil, "status", no),
		"status --json":    b.run(t, nil, "status", "--json", no),
	}
	for name, got := range runs {
		out := got.stdout + got.stderr
		for _, c := range []string{"\x1b", "\a", "\u009b", "\u202e", "\x7f", "\t"} {
			require.NotContains(t, out, c, "%s: %q reached the terminal:\n%s", name, c, out)
		}
		require.NotContains(t, out, "\nfake", "%s: a line break from Redis started a line", name)
	}
	require.Contains(t, runs["dead list"].stdout, `p\x1b]0;pwned\a\x1b[31mred\x1b]52;c;cm0gLXJmIH4=\x1b\\u009b2J\u202edilav\x7f\tfake\ncolumn`)
	require.Contains(t, runs["status"].stdout, `  message          卡券\x1b]0;pwned\a`)
	require.Contains(t, runs["dead replay"].stderr, `out_request_no=n\x1b]0;pwned\a: `)
	for _, name := range []string{"dead list --json", "status --json"} {
		require.Contains(t, runs[name].stdout, `\u001b]0;pwned\u0007\u001b[31mred`, name)
		require.Contains(t, runs[name].stdout, `\u009b2J\u202edilav\u007f\tfake\ncolumn`, name)
	}
	var rep statusReport
	require.NoError(t, json.Unmarshal([]byte(runs["status --json"].stdout), &rep))
	require.Equal(t, "p"+hostile, rep.DeadLetter.CardID, "JSON readers get the text as it is")
	require.Equal(t, 1, strings.Count(runs["status --json"].stdout, "\n"))
}

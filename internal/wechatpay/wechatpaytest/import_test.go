package wechatpaytest_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"

	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

const openid = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"

func TestIdempotency(t *testing.T) {
	t.Parallel()
	first := importBody{OpenID: openid, OutRequestNo: "idem-1"}
	tests := []struct {
		name        string
		second      importBody
		wantSame    bool   // the second call returns the first call's code
		wantStatus  int    // of the second call, when it is refused
		wantMessage string // of the second call, when it is refused
	}{
		{name: "same number, same parameters", second: first, wantSame: true},
		{name: "same number, another member", second: importBody{OpenID: "oUpF8uOther", OutRequestNo: "idem-1"}, wantStatus: http.StatusBadRequest, wantMessage: wechatpaytest.MessageOutRequestNoReused},
		{name: "same number, a code given", second: importBody{OpenID: openid, Code: "123456", OutRequestNo: "idem-1"}, wantStatus: http.StatusBadRequest, wantMessage: wechatpaytest.MessageOutRequestNoReused},
		{name: "same member, another number", second: importBody{OpenID: openid, OutRequestNo: "idem-2"}, wantStatus: http.StatusBadRequest, wantMessage: wechatpaytest.MessageAlreadyMember},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			firstCode, _, err := b.importMember(t, testCard, first)
			require.NoError(t, err)

			code, _, err := b.importMember(t, testCard, tt.second)

			st := b.srv.Stats()
			require.Equal(t, 1, st.Imports)
			require.Equal(t, 1, b.srv.ImportCount(testCard, openid))
			if tt.wantSame {
				require.NoError(t, err)
				require.Equal(t, firstCode, code)
				require.Equal(t, 1, st.Replays)
				return
			}
			apiErr := apiError(t, err)
			require.Equal(t, tt.wantStatus, apiErr.StatusCode)
			require.Equal(t, "INVALID_REQUEST", apiErr.Code)
			require.Equal(t, tt.wantMessage, apiErr.Message)
			require.Zero(t, st.Replays)
		})
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		seed        bool
		card        string
		body        importBody
		wantStatus  int
		wantCode    string
		wantMessage string
		wantField   string
	}{
		{name: "unknown card", card: "pUNKNOWN-card", body: importBody{OpenID: openid, OutRequestNo: "r1"}, wantStatus: 404, wantCode: "NOT_FOUND"},
		{name: "card of another merchant", card: "pNOAUTH-card", body: importBody{OpenID: openid, OutRequestNo: "r1"}, wantStatus: 403, wantCode: "NO_AUTH"},
		{name: "no trade in a year", card: testCard, body: importBody{OpenID: "o_notrade_1", OutRequestNo: "r1"}, wantStatus: 400, wantCode: "INVALID_REQUEST", wantMessage: wechatpaytest.MessageNoTrade},
		{name: "member by prefix", card: testCard, body: importBody{OpenID: "o_member_1", OutRequestNo: "r1"}, wantStatus: 400, wantCode: "INVALID_REQUEST", wantMessage: wechatpaytest.MessageAlreadyMember},
		{name: "seeded member", seed: true, card: testCard, body: importBody{OpenID: openid, OutRequestNo: "r1"}, wantStatus: 400, wantCode: "INVALID_REQUEST", wantMessage: wechatpaytest.MessageAlreadyMember},
		{name: "openid missing", card: testCard, body: importBody{OutRequestNo: "r1"}, wantStatus: 400, wantCode: "PARAM_ERROR", wantField: "/openid"},
		{name: "openid too long", card: testCard, body: importBody{OpenID: strings.Repeat("o", 129), OutRequestNo: "r1"}, wantStatus: 400, wantCode: "PARAM_ERROR", wantField: "/openid"},
		{name: "code too long", card: testCard, body: importBody{OpenID: openid, Code: strings.Repeat("1", 33), OutRequestNo: "r1"}, wantStatus: 400, wantCode: "PARAM_ERROR", wantField: "/code"},
		{name: "out_request_no missing", card: testCard, body: importBody{OpenID: openid}, wantStatus: 400, wantCode: "PARAM_ERROR", wantField: "/out_request_no"},
		{name: "out_request_no with a dot", card: testCard, body: importBody{OpenID: openid, OutRequestNo: "r.1"}, wantStatus: 400, wantCode: "PARAM_ERROR", wantField: "/out_request_no"},
		{name: "out_request_no too long", card: testCard, body: importBody{OpenID: openid, OutRequestNo: strings.Repeat("r", 129)}, wantStatus: 400, wantCode: "PARAM_ERROR", wantField: "/out_request_no"},
		{name: "card_id too long", card: strings.Repeat("p", 33), body: importBody{OpenID: openid, OutRequestNo: "r1"}, wantStatus: 400, wantCode: "PARAM_ERROR", wantField: "/card_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			if tt.seed {
				b.srv.Seed(tt.card, tt.body.OpenID)
			}

			_, _, err := b.importMember(t, tt.card, tt.body)

			apiErr := apiError(t, err)
			require.Equal(t, tt.wantStatus, apiErr.StatusCode)
			require.Equal(t, tt.wantCode, apiErr.Code)
			if tt.wantMessage != "" {
				require.Equal(t, tt.wantMessage, apiErr.Message)
			}
			if tt.wantField != "" {
				detail, ok := apiErr.Detail.(map[string]any)
				require.True(t, ok, "detail is %T", apiErr.Detail)
				require.Equal(t, tt.wantField, detail["field"])
				require.NotEmpty(t, detail["issue"])
			}
			if tt.body.OpenID != "" {
				require.NotContains(t, apiErr.Body, tt.body.OpenID, "refusals never echo the openid")
			}
			require.Zero(t, b.srv.Members())
			require.Equal(t, 1, b.srv.Stats().Refusals[tt.wantCode])
		})
	}
}

// TestAuthorizeCard lifts a card's NO_AUTH, as an operator fixing the
// cause of dead letters would: the same out_request_no then imports.
func TestAuthorizeCard(t *testing.T) {
	t.Parallel()
	b := setup(t)
	body := importBody{OpenID: openid, OutRequestNo: "a1"}
	_, _, err := b.importMember(t, "pNOAUTH-card", body)
	require.Equal(t, "NO_AUTH", apiError(t, err).Code)

	b.srv.AuthorizeCard("pNOAUTH-card")
	code, _, err := b.importMember(t, "pNOAUTH-card", body)
	require.NoError(t, err)
	require.NotEmpty(t, code)
	require.Equal(t, 1, b.srv.ImportCount("pNOAUTH-card", openid))

	_, _, err = b.importMember(t, "pNOAUTH-other", importBody{OpenID: openid, OutRequestNo: "a2"})
	require.Equal(t, "NO_AUTH", apiError(t, err).Code, "only the card named")
}

func TestCodeGivenByTheCaller(t *testing.T) {
	t.Parallel()
	b := setup(t)

	code, _, err := b.importMember(t, testCard, importBody{OpenID: openid, Code: "880000000001", OutRequestNo: "c1"})
	require.NoError(t, err)
	require.Equal(t, "880000000001", code)

	_, _, err = b.importMember(t, testCard, importBody{OpenID: "oUpF8uOther", Code: "880000000001", OutRequestNo: "c2"})
	apiErr := apiError(t, err)
	require.Equal(t, wechatpaytest.MessageCodeTaken, apiErr.Message)
}

func TestScheduledFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		opts       []wechatpaytest.Option
		schedule   func(*wechatpaytest.Server)
		wantStatus []int // of each attempt; the last one succeeds
		wantCode   string
		wantReplay bool // the successful attempt replays an earlier import
	}{
		{
			name: "FailNext",
			schedule: func(s *wechatpaytest.Server) {
				s.FailNext(2, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "系统繁忙")
			},
			wantStatus: []int{503, 503, 200},
			wantCode:   "SERVICE_UNAVAILABLE",
		},
		{
			name:       "LoseNextAnswers",
			schedule:   func(s *wechatpaytest.Server) { s.LoseNextAnswers(1) },
			wantStatus: []int{500, 200},
			wantCode:   "SYSTEM_ERROR",
			wantReplay: true,
		},
		{
			name:       "Accept202Next",
			schedule:   func(s *wechatpaytest.Server) { s.Accept202Next(1) },
			wantStatus: []int{202, 200},
		},
		{
			name:       "WithFirstAttemptFaults",
			opts:       []wechatpaytest.Option{wechatpaytest.WithFirstAttemptFaults(1)},
			schedule:   func(*wechatpaytest.Server) {},
			wantStatus: []int{500, 200},
			wantCode:   "SYSTEM_ERROR",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.opts...)
			tt.schedule(b.srv)
			body := importBody{OpenID: openid, OutRequestNo: "fault-1"}

			var code string
			for i, want := range tt.wantStatus {
				c, res, err := b.importMember(t, testCard, body)
				switch {
				case want == http.StatusOK:
					require.NoError(t, err, "attempt %d", i+1)
					code = c
				case want == http.StatusAccepted:
					require.NoError(t, err, "a signed 202 verifies")
					require.Equal(t, want, res.Response.StatusCode)
				default:
					apiErr := apiError(t, err)
					require.Equal(t, want, apiErr.StatusCode, "attempt %d", i+1)
					require.Equal(t, tt.wantCode, apiErr.Code)
				}
			}

			st := b.srv.Stats()
			require.Regexp(t, cardCode, code)
			require.Equal(t, 1, b.srv.ImportCount(testCard, openid), "imported exactly once")
			require.Equal(t, 1, st.Imports)
			require.Equal(t, tt.wantReplay, st.Replays == 1)
			require.Equal(t, len(tt.wantStatus), st.Requests)
		})
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := setup(t, wechatpaytest.WithRateLimit(2), wechatpaytest.WithClock(clock.Now))
	tests := []struct {
		name    string
		advance time.Duration
		want    int
	}{
		{name: "first in the second", want: 200},
		{name: "second in the second", advance: 900 * time.Millisecond, want: 200},
		{name: "third in the second", advance: 99 * time.Millisecond, want: 429},
		{name: "a second after the first", advance: time.Millisecond, want: 200},
		{name: "within a second of the second", want: 429},
	}
	// Subtests run in order: each depends on the requests before it.
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock.Advance(tt.advance)

			_, _, err := b.importMember(t, testCard, importBody{OpenID: openid + string(rune('a'+i)), OutRequestNo: "rate-" + string(rune('a'+i))})

			if tt.want == http.StatusOK {
				require.NoError(t, err)
				return
			}
			apiErr := apiError(t, err)
			require.Equal(t, tt.want, apiErr.StatusCode)
			require.Equal(t, "RATELIMIT_EXCEEDED", apiErr.Code)
		})
	}
	require.Equal(t, 2, b.srv.Stats().Refusals["RATELIMIT_EXCEEDED"])
	n, first, last := b.srv.Admitted()
	require.Equal(t, 3, n, "refused requests are not admitted")
	require.Equal(t, time.Second, last.Sub(first))
}

// TestOutage: while SetOutage is on, every call meets its 5xx and nothing
// is imported; once it is off, the same call imports.
func TestOutage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.SetOutage(http.StatusServiceUnavailable)
	body := importBody{OpenID: openid, OutRequestNo: "outage-1"}
	for range 3 {
		_, _, err := b.importMember(t, testCard, body)
		apiErr := apiError(t, err)
		require.Equal(t, http.StatusServiceUnavailable, apiErr.StatusCode)
		require.Equal(t, "SERVICE_UNAVAILABLE", apiErr.Code)
	}
	require.Zero(t, b.srv.Members())
	require.Equal(t, 3, b.srv.Failures("outage-1"))
	b.srv.SetOutage(0)
	_, _, err := b.importMember(t, testCard, body)
	require.NoError(t, err)
	require.Equal(t, 1, b.srv.Members())
	require.Equal(t, 3, b.srv.Failures("outage-1"), "a delivered 200 is no failure")
	require.Zero(t, b.srv.Failures("outage-2"))
}

// TestClientTimeoutDoesNotUndoTheImport: a caller that gives up waiting
// does not know the outcome; WeChat imported anyway, and the retry meets
// the replay.
func TestClientTimeoutDoesNotUndoTheImport(t *testing.T) {
	t.Parallel()
	// The caller's timeout must outlast the TLS handshake and the upload
	// of the body on a loaded machine, or the emulator never sees the
	// request; the answer's latency is what it must not outlast. The wait
	// ends as soon as the caller hangs up, so the long latency costs
	// nothing.
	b := setup(t, wechatpaytest.WithLatency(time.Minute))
	k := b.keys
	impatient := b.srv.Client()
	impatient.Timeout = 2 * time.Second
	client, err := core.NewClient(t.Context(),
		option.WithWechatPayPublicKeyAuthCipher(k.MchID, k.MchCertSerial, k.MchPrivateKey, k.PublicKeyID, k.WechatPayPublicKey()),
		option.WithHTTPClient(impatient))
	require.NoError(t, err)
	body := importBody{OpenID: openid, OutRequestNo: "slow-1"}

	_, _, err = doImport(t, client, b.srv.URL, testCard, body)
	require.Error(t, err)
	require.Eventually(t, func() bool { return b.srv.ImportCount(testCard, openid) == 1 }, 5*time.Second, 10*time.Millisecond)
	// The 200 went to a caller that had hung up: a failure on its side.
	require.Eventually(t, func() bool { return b.srv.Failures("slow-1") == 1 }, 5*time.Second, 10*time.Millisecond)

	b.srv.SetLatency(0)
	_, _, err = b.importMember(t, testCard, body)
	require.NoError(t, err)
	require.Equal(t, 1, b.srv.Stats().Replays)
	require.Equal(t, 1, b.srv.ImportCount(testCard, openid))
	require.Equal(t, 1, b.srv.Failures("slow-1"))
}

// TestConcurrentRetries races many copies of each call: every member must
// be imported exactly once and every copy get the same code.
func TestConcurrentRetries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const members, copies = 8, 4
	codes := make([][]string, members)
	var wg sync.WaitGroup
	for m := range members {
		codes[m] = make([]string, copies)
		for c := range copies {
			wg.Go(func() {
				body := importBody{OpenID: openid + string(rune('A'+m)), OutRequestNo: "race-" + string(rune('A'+m))}
				code, _, err := b.importMember(t, testCard, body)
				if err == nil {
					codes[m][c] = code
				}
			})
		}
	}
	wg.Wait()

	for m := range members {
		require.Equal(t, 1, b.srv.ImportCount(testCard, openid+string(rune('A'+m))))
		for c := range copies {
			require.Equal(t, codes[m][0], codes[m][c])
		}
	}
	st := b.srv.Stats()
	require.Equal(t, members, st.Imports)
	require.Equal(t, members*(copies-1), st.Replays)
	require.Equal(t, members, b.srv.Members())
}

func TestStatsEndpoint(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, _, err := b.importMember(t, testCard, importBody{OpenID: openid, OutRequestNo: "s1"})
	require.NoError(t, err)
	_, _, err = b.importMember(t, "pUNKNOWN", importBody{OpenID: openid, OutRequestNo: "s2"})
	require.Error(t, err)

	resp, err := b.srv.Client().Get(b.srv.URL + "/stats")
	require.NoError(t, err)
	defer resp.Body.Close()
	var got wechatpaytest.Stats
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))

	require.Equal(t, wechatpaytest.Stats{Requests: 2, Imports: 1, Members: 1, Refusals: map[string]int{"NOT_FOUND": 1}}, got)
	require.Equal(t, got, b.srv.Stats())
}

// fakeClock is a clock a test moves by hand. It starts at the real time so
// that request signatures, made with the real clock, stay within WeChat's
// five minutes.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

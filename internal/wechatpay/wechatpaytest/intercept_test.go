package wechatpaytest_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"

	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

// TestForgedRefusals: a refusal a stand-in on the path forged carries no
// signature and no Request-ID, the SDK's validator refuses it, nothing is
// imported, and the retry under the same out_request_no imports once.
func TestForgedRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		schedule    func(s *wechatpaytest.Server, outRequestNo string)
		wantStatus  int
		wantCode    string
		wantMessage string
	}{
		{
			name: "ForgeRefusalNext 400 already a member",
			schedule: func(s *wechatpaytest.Server, _ string) {
				s.ForgeRefusalNext(1, http.StatusBadRequest, "INVALID_REQUEST", wechatpaytest.MessageAlreadyMember)
			},
			wantStatus: 400, wantCode: "INVALID_REQUEST", wantMessage: wechatpaytest.MessageAlreadyMember,
		},
		{
			name: "ForgeRefusalFor 404",
			schedule: func(s *wechatpaytest.Server, no string) {
				s.ForgeRefusalFor(no, http.StatusNotFound, "NOT_FOUND", "卡券不存在")
			},
			wantStatus: 404, wantCode: "NOT_FOUND", wantMessage: "卡券不存在",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			body := importBody{OpenID: openid, OutRequestNo: "forged-refusal-1"}
			tt.schedule(b.srv, body.OutRequestNo)

			_, res, err := b.importMember(t, testCard, body)

			apiErr := apiError(t, err)
			require.Equal(t, tt.wantStatus, apiErr.StatusCode)
			require.Equal(t, tt.wantCode, apiErr.Code)
			require.Equal(t, tt.wantMessage, apiErr.Message)
			requireUnsigned(t, b.keys, res.Response)
			require.Empty(t, res.Response.Header.Get("Request-ID"), "not WeChat's answer")
			require.Zero(t, b.srv.ImportCount(testCard, openid), "nothing imported")

			code, _, err := b.importMember(t, testCard, body)

			require.NoError(t, err, "the retry reaches WeChat")
			require.Regexp(t, cardCode, code)
			require.Equal(t, 1, b.srv.ImportCount(testCard, openid))
			st := b.srv.Stats()
			require.Equal(t, 1, st.ForgedRefusals)
			require.Empty(t, st.Refusals, "a forged refusal is not WeChat's")
			require.Zero(t, st.Replays)
			require.Equal(t, 1, b.srv.Failures(body.OutRequestNo))
		})
	}
}

// TestForgeRefusalForHitsOnlyItsNumber: other numbers go through, and the
// named one is hit once.
func TestForgeRefusalForHitsOnlyItsNumber(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.ForgeRefusalFor("target", http.StatusBadRequest, "INVALID_REQUEST", wechatpaytest.MessageAlreadyMember)
	b.srv.ForgeRefusalFor("target", http.StatusNotFound, "NOT_FOUND", "卡券不存在")
	tests := []struct {
		name     string
		body     importBody
		wantCode string // "" for an import
	}{
		{name: "another number", body: importBody{OpenID: openid + "x", OutRequestNo: "bystander"}},
		{name: "first attempt", body: importBody{OpenID: openid, OutRequestNo: "target"}, wantCode: "INVALID_REQUEST"},
		{name: "second attempt, queued for it", body: importBody{OpenID: openid, OutRequestNo: "target"}, wantCode: "NOT_FOUND"},
		{name: "third attempt", body: importBody{OpenID: openid, OutRequestNo: "target"}},
	}
	// In order: each attempt spends what the one before left.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := b.importMember(t, testCard, tt.body)
			if tt.wantCode == "" {
				require.NoError(t, err)
				return
			}
			require.Equal(t, tt.wantCode, apiError(t, err).Code)
		})
	}
	require.Equal(t, 2, b.srv.Stats().ForgedRefusals)
	require.Equal(t, 2, b.srv.Members())
}

// TestRedirects: a 3xx carries Location and no signature, imports
// nothing, and a client that does not follow it sends nothing to the host
// it names; the retry imports once.
func TestRedirects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		status   int
		schedule func(s *wechatpaytest.Server, outRequestNo, location string)
	}{
		{name: "RedirectNext 302", status: http.StatusFound, schedule: func(s *wechatpaytest.Server, _, location string) {
			s.RedirectNext(1, http.StatusFound, location)
		}},
		{name: "RedirectFor 307", status: http.StatusTemporaryRedirect, schedule: func(s *wechatpaytest.Server, no, location string) {
			s.RedirectFor(no, http.StatusTemporaryRedirect, location)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			var elsewhere atomic.Int64
			other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
			t.Cleanup(other.Close)
			location := other.URL + "/v3/marketing/membercard-open/cards/x/users/import"
			body := importBody{OpenID: openid, OutRequestNo: "redirect-1"}
			tt.schedule(b.srv, body.OutRequestNo, location)
			hc := b.srv.Client()
			hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			k := b.keys
			client, err := core.NewClient(t.Context(),
				option.WithWechatPayPublicKeyAuthCipher(k.MchID, k.MchCertSerial, k.MchPrivateKey, k.PublicKeyID, k.WechatPayPublicKey()),
				option.WithHTTPClient(hc))
			require.NoError(t, err)

			_, res, err := doImport(t, client, b.srv.URL, testCard, body)

			apiErr := apiError(t, err)
			require.Equal(t, tt.status, apiErr.StatusCode)
			require.Equal(t, location, res.Response.Header.Get("Location"))
			requireUnsigned(t, k, res.Response)
			require.Zero(t, b.srv.ImportCount(testCard, openid), "nothing imported")
			require.Zero(t, elsewhere.Load(), "the host the 3xx names received nothing")

			_, _, err = doImport(t, client, b.srv.URL, testCard, body)

			require.NoError(t, err)
			require.Equal(t, 1, b.srv.ImportCount(testCard, openid))
			st := b.srv.Stats()
			require.Equal(t, 1, st.Redirects)
			require.Empty(t, st.Refusals)
			require.Equal(t, 1, b.srv.Failures(body.OutRequestNo))
		})
	}
}

// TestInterceptsComeFirst: a forged refusal or redirect answers before
// WeChat's own faults and rules, which the call never reached, and
// scheduled ones are answered in the order they were scheduled.
func TestInterceptsComeFirst(t *testing.T) {
	t.Parallel()
	b := setup(t, wechatpaytest.WithFirstAttemptFaults(1))
	b.srv.SetOutage(http.StatusServiceUnavailable)
	b.srv.ForgeRefusalNext(1, http.StatusNotFound, "NOT_FOUND", "卡券不存在")
	b.srv.RedirectNext(1, http.StatusFound, "http://127.0.0.1:1/elsewhere")
	hc := b.srv.Client()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	k := b.keys
	client, err := core.NewClient(t.Context(),
		option.WithWechatPayPublicKeyAuthCipher(k.MchID, k.MchCertSerial, k.MchPrivateKey, k.PublicKeyID, k.WechatPayPublicKey()),
		option.WithHTTPClient(hc))
	require.NoError(t, err)
	body := importBody{OpenID: openid, OutRequestNo: "first-1"}
	for i, want := range []int{404, 302, 503} {
		_, _, err := doImport(t, client, b.srv.URL, testCard, body)
		require.Equal(t, want, apiError(t, err).StatusCode, "attempt %d", i+1)
	}
	b.srv.SetOutage(0)
	_, _, err = doImport(t, client, b.srv.URL, testCard, body)
	require.Equal(t, "SYSTEM_ERROR", apiError(t, err).Code, "the first attempt that reached the import step")
	_, _, err = doImport(t, client, b.srv.URL, testCard, body)
	require.NoError(t, err)
	require.Equal(t, 1, b.srv.ImportCount(testCard, openid))
}

func TestInterceptStatusesAreChecked(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tests := []struct {
		name string
		call func()
	}{
		{"ForgeRefusalNext 200", func() { b.srv.ForgeRefusalNext(1, 200, "OK", "") }},
		{"ForgeRefusalFor 302", func() { b.srv.ForgeRefusalFor("n", 302, "X", "") }},
		{"RedirectNext 400", func() { b.srv.RedirectNext(1, 400, "http://x") }},
		{"RedirectFor 200", func() { b.srv.RedirectFor("n", 200, "http://x") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Panics(t, tt.call)
		})
	}
}

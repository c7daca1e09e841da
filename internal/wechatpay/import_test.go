package wechatpay_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/wechatpay"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

const (
	testCard   = "pbLatjvWOibDc5-TBnbUk1pD12o0"
	testOpenID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
)

var seq atomic.Int64

// nextNo returns an out_request_no no other test uses.
func nextNo() string {
	return fmt.Sprintf("1900000001-20261128-%06d", seq.Add(1))
}

type testBundle struct {
	srv    *wechatpaytest.Server
	client *wechatpay.Client
}

func setup(t *testing.T, mode wechatpay.Mode, opts ...wechatpaytest.Option) *testBundle {
	t.Helper()
	srv := wechatpaytest.NewServer(wechatpaytest.TestKeys(t), opts...)
	t.Cleanup(srv.Close)
	client, err := wechatpay.NewClient(context.Background(), srv.ClientConfig(mode))
	require.NoError(t, err)
	t.Cleanup(client.Close)
	return &testBundle{srv: srv, client: client}
}

func (b *testBundle) importMember(t *testing.T, openid string) (wechatpay.ImportResult, error) {
	t.Helper()
	return b.client.Import(context.Background(), wechatpay.ImportRequest{CardID: testCard, OpenID: openid, OutRequestNo: nextNo()})
}

func TestImportInEveryKeyMode(t *testing.T) {
	t.Parallel()
	for _, mode := range []wechatpay.Mode{wechatpay.ModePublicKey, wechatpay.ModePlatformCertificate, wechatpay.ModeAutoCertificate, wechatpay.ModeMixed} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			b := setup(t, mode)
			require.Equal(t, mode, b.client.Mode())
			res, err := b.importMember(t, testOpenID)
			require.NoError(t, err)
			require.Regexp(t, `^[0-9]{12}$`, res.Code)
			require.NotEmpty(t, res.RequestID)
			require.Equal(t, 1, b.srv.ImportCount(testCard, testOpenID))
		})
	}
}

// TestClassification covers every row of the decision table in
// docs/wechat-answers.md: what WeChat answers, and the kind it becomes.
func TestClassification(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		fault   func(b *testBundle)
		openid  string
		timeout time.Duration
		// unreachable points the client at a port nothing listens on.
		unreachable bool
		want        wechatpay.Kind
		// wantCardCheck: the refusal asks for WeChat's list of the
		// member's cards before it settles anything.
		wantCardCheck bool
		wantStatus    int
		wantCode      string
		wantText      []string
	}{
		{name: "400 PARAM_ERROR", fault: failNext(400, "PARAM_ERROR", "参数错误"), want: wechatpay.KindPermanent, wantStatus: 400, wantCode: "PARAM_ERROR"},
		{name: "400 INVALID_REQUEST card id invalid", fault: failNext(400, "INVALID_REQUEST", "card_id无效"), want: wechatpay.KindPermanent, wantCardCheck: true, wantStatus: 400, wantCode: "INVALID_REQUEST", wantText: []string{"card_id无效"}},
		{name: "400 INVALID_REQUEST no trade in a year (sandbox rule)", openid: wechatpaytest.OpenIDPrefixNoTrade + "abcdefgh1234", want: wechatpay.KindPermanent, wantCardCheck: true, wantStatus: 400, wantCode: "INVALID_REQUEST", wantText: []string{wechatpaytest.MessageNoTrade}},
		{name: "400 INVALID_REQUEST already holds the card", fault: failNext(400, "INVALID_REQUEST", wechatpaytest.MessageAlreadyMember), want: wechatpay.KindPermanent, wantStatus: 400, wantCode: "INVALID_REQUEST", wantCardCheck: true},
		{name: "400 INVALID_REQUEST already holds the card (sandbox rule)", openid: wechatpaytest.OpenIDPrefixMember + "abcdefgh1234", want: wechatpay.KindPermanent, wantStatus: 400, wantCode: "INVALID_REQUEST", wantCardCheck: true},
		{name: "400 INVALID_REQUEST nobody signed", fault: forgeRefusal(400, "INVALID_REQUEST", wechatpaytest.MessageAlreadyMember), want: wechatpay.KindUnverified, wantStatus: 400, wantCode: "INVALID_REQUEST", wantText: []string{"refusal not verified"}},
		{name: "404 NOT_FOUND nobody signed", fault: forgeRefusal(404, "NOT_FOUND", "资源不存在"), want: wechatpay.KindUnverified, wantStatus: 404, wantCode: "NOT_FOUND", wantText: []string{"refusal not verified"}},
		{name: "403 NO_AUTH nobody signed", fault: forgeRefusal(403, "NO_AUTH", "商户无权限"), want: wechatpay.KindUnverified, wantStatus: 403, wantCode: "NO_AUTH"},
		{name: "401 SIGN_ERROR", fault: failNext(401, "SIGN_ERROR", "错误的签名，验证失败"), want: wechatpay.KindSystemic, wantStatus: 401, wantCode: "SIGN_ERROR", wantText: []string{"hint: check WECHATPAY_MCH_PRIVATE_KEY_FILE", "clock"}},
		{name: "403 NO_AUTH", fault: failNext(403, "NO_AUTH", "商户无权限"), want: wechatpay.KindPermanent, wantStatus: 403, wantCode: "NO_AUTH"},
		{name: "404 NOT_FOUND", fault: failNext(404, "NOT_FOUND", "资源不存在"), want: wechatpay.KindPermanent, wantStatus: 404, wantCode: "NOT_FOUND"},
		{name: "404 RESOURCE_NOT_EXISTS", fault: failNext(404, "RESOURCE_NOT_EXISTS", "资源不存在"), want: wechatpay.KindPermanent, wantStatus: 404, wantCode: "RESOURCE_NOT_EXISTS"},
		{name: "429 RATELIMIT_EXCEEDED", fault: failNext(429, "RATELIMIT_EXCEEDED", "频率超限"), want: wechatpay.KindRateLimited, wantStatus: 429, wantCode: "RATELIMIT_EXCEEDED"},
		{name: "429 FREQUENCY_LIMITED", fault: failNext(429, "FREQUENCY_LIMITED", "频率超限"), want: wechatpay.KindRateLimited, wantStatus: 429, wantCode: "FREQUENCY_LIMITED"},
		{name: "500 SYSTEM_ERROR", fault: failNext(500, "SYSTEM_ERROR", "系统错误"), want: wechatpay.KindTransient, wantStatus: 500, wantCode: "SYSTEM_ERROR"},
		{name: "502 SERVICE_UNAVAILABLE", fault: failNext(502, "SERVICE_UNAVAILABLE", "服务不可用"), want: wechatpay.KindTransient, wantStatus: 502, wantCode: "SERVICE_UNAVAILABLE"},
		{name: "503 SERVICE_UNAVAILABLE", fault: failNext(503, "SERVICE_UNAVAILABLE", "服务不可用"), want: wechatpay.KindTransient, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},
		{name: "202 accepted, not finished", fault: func(b *testBundle) { b.srv.Accept202Next(1) }, want: wechatpay.KindTransient, wantStatus: 202},
		{name: "2xx whose signature does not verify", fault: func(b *testBundle) { b.srv.ForgeNext(1) }, want: wechatpay.KindUnverified, wantStatus: 200, wantText: []string{"signature does not verify"}},
		{name: "302 redirect", fault: func(b *testBundle) {
			b.srv.RedirectNext(1, 302, "https://elsewhere.example/v3/x?openid=oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
		}, want: wechatpay.KindTransient, wantStatus: 302, wantText: []string{"redirect not followed (to host elsewhere.example)"}},
		{name: "timeout", fault: func(b *testBundle) { b.srv.SetLatency(2 * time.Second) }, timeout: 200 * time.Millisecond, want: wechatpay.KindTransient, wantText: []string{"context deadline exceeded"}},
		{name: "network error", unreachable: true, want: wechatpay.KindTransient, wantText: []string{"connection refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, wechatpay.ModePublicKey)
			if tt.fault != nil {
				tt.fault(b)
			}
			if tt.unreachable {
				cfg := b.srv.ClientConfig(wechatpay.ModePublicKey)
				cfg.BaseURL = "http://" + closedPort(t)
				client, err := wechatpay.NewClient(context.Background(), cfg)
				require.NoError(t, err)
				b.client = client
			}
			openid := tt.openid
			if openid == "" {
				openid = testOpenID
			}
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			_, err := b.client.Import(ctx, wechatpay.ImportRequest{CardID: testCard, OpenID: openid, OutRequestNo: nextNo()})
			require.Error(t, err)
			var werr *wechatpay.Error
			require.True(t, errors.As(err, &werr), "got %T", err)
			require.Equal(t, tt.want, werr.Kind, err.Error())
			require.Equal(t, tt.want, wechatpay.KindOf(err))
			require.Equal(t, tt.wantStatus, werr.StatusCode)
			require.Equal(t, tt.wantCode, werr.Code)
			require.Equal(t, tt.wantCardCheck, werr.AsksForCardCheck())
			if tt.wantStatus != 0 && !forged(tt.want, tt.wantStatus) {
				require.NotEmpty(t, werr.RequestID, "request id kept for WeChat's support")
				require.Contains(t, err.Error(), "[request_id "+werr.RequestID+"]")
			}
			for _, want := range tt.wantText {
				require.Contains(t, err.Error(), want)
			}
			assertSafe(t, err, openid)
		})
	}
}

// assertSafe checks an error can be logged: no openid, no headers, no
// Authorization, no whole APIError.
func assertSafe(t *testing.T, err error, openid string) {
	t.Helper()
	text := err.Error()
	require.NotContains(t, text, openid)
	for _, leak := range []string{"Authorization", "Wechatpay-Signature", "Header:", "error http response", "WECHATPAY2-SHA256"} {
		require.NotContains(t, text, leak)
	}
}

func failNext(status int, code, message string) func(b *testBundle) {
	return func(b *testBundle) { b.srv.FailNext(1, status, code, message) }
}

// forged reports whether a row's answer did not come from WeChat (it
// carries no Request-ID): a refusal that does not verify, a redirect.
func forged(k wechatpay.Kind, status int) bool {
	return (k == wechatpay.KindUnverified && status != 200) || status/100 == 3
}

func forgeRefusal(status int, code, message string) func(b *testBundle) {
	return func(b *testBundle) { b.srv.ForgeRefusalNext(1, status, code, message) }
}

// closedPort returns an address nothing listens on: a call there fails
// before WeChat could answer.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestBackupHostWhenTheMainHostIsUnreachable(t *testing.T) {
	t.Parallel()
	srv := wechatpaytest.NewServer(wechatpaytest.TestKeys(t))
	t.Cleanup(srv.Close)
	tests := []struct {
		name    string
		base    string
		backup  string
		wantErr string
	}{
		{name: "fails over", base: "http://" + closedPort(t), backup: srv.URL},
		{name: "no backup configured", base: "http://" + closedPort(t), wantErr: "connection refused"},
		{name: "backup down too", base: "http://" + closedPort(t), backup: "http://" + closedPort(t), wantErr: "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := srv.ClientConfig(wechatpay.ModePublicKey)
			cfg.BaseURL, cfg.BackupBaseURL = tt.base, tt.backup
			client, err := wechatpay.NewClient(context.Background(), cfg)
			require.NoError(t, err)
			res, err := client.Import(context.Background(), wechatpay.ImportRequest{CardID: testCard, OpenID: testOpenID, OutRequestNo: nextNo()})
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.Equal(t, wechatpay.KindTransient, wechatpay.KindOf(err))
				return
			}
			require.NoError(t, err)
			require.Regexp(t, `^[0-9]{12}$`, res.Code)
		})
	}
}

func TestRetriesKeepOneImport(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		fault func(b *testBundle)
		want  wechatpay.Kind
	}{
		{name: "lost answer", fault: func(b *testBundle) { b.srv.LoseNextAnswers(1) }, want: wechatpay.KindTransient},
		{name: "forged answer", fault: func(b *testBundle) { b.srv.ForgeNext(1) }, want: wechatpay.KindUnverified},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, wechatpay.ModePublicKey)
			tt.fault(b)
			req := wechatpay.ImportRequest{CardID: testCard, OpenID: testOpenID, OutRequestNo: nextNo()}
			_, err := b.client.Import(context.Background(), req)
			require.Equal(t, tt.want, wechatpay.KindOf(err))
			res, err := b.client.Import(context.Background(), req)
			require.NoError(t, err, "the retry under the same out_request_no gets the first result")
			require.Regexp(t, `^[0-9]{12}$`, res.Code)
			require.Equal(t, 1, b.srv.ImportCount(testCard, testOpenID))
			require.Equal(t, 1, b.srv.Stats().Replays)
		})
	}
}

func TestWrongMerchantKeyIsSystemic(t *testing.T) {
	t.Parallel()
	srv := wechatpaytest.NewServer(wechatpaytest.TestKeys(t))
	t.Cleanup(srv.Close)
	cfg := srv.ClientConfig(wechatpay.ModePublicKey)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	cfg.MchPrivateKey = other
	client, err := wechatpay.NewClient(context.Background(), cfg)
	require.NoError(t, err)
	_, err = client.Import(context.Background(), wechatpay.ImportRequest{CardID: testCard, OpenID: testOpenID, OutRequestNo: nextNo()})
	require.Equal(t, wechatpay.KindSystemic, wechatpay.KindOf(err))
	require.Contains(t, err.Error(), "http 401 SIGN_ERROR")
	require.Equal(t, 0, srv.Stats().Imports)
}

func TestAutoModeNeedsTheRightAPIv3Key(t *testing.T) {
	t.Parallel()
	srv := wechatpaytest.NewServer(wechatpaytest.TestKeys(t))
	t.Cleanup(srv.Close)
	cfg := srv.ClientConfig(wechatpay.ModeAutoCertificate)
	cfg.APIv3Key = strings.Repeat("x", 32)
	_, err := wechatpay.NewClient(context.Background(), cfg)
	require.ErrorContains(t, err, "WECHATPAY_APIV3_KEY_FILE: download platform certificates:")
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  wechatpay.Config
		want []string
	}{
		{name: "empty", cfg: wechatpay.Config{}, want: []string{"WECHATPAY_MCHID: is required", "WECHATPAY_MCH_CERT_SERIAL: is required", "WECHATPAY_MCH_PRIVATE_KEY_FILE: is required", "one is required to verify WeChat's answers"}},
		{name: "public key id without key", cfg: wechatpay.Config{PublicKeyID: "PUB_KEY_ID_1"}, want: []string{"WECHATPAY_PUBLIC_KEY_ID and WECHATPAY_PUBLIC_KEY_FILE: public-key mode needs both"}},
		{name: "auto with public key", cfg: wechatpay.Config{APIv3Key: "k", PublicKeyID: "PUB_KEY_ID_1"}, want: []string{"WECHATPAY_APIV3_KEY_FILE: auto-download mode cannot be combined"}},
		{name: "base url with path", cfg: wechatpay.Config{BaseURL: "https://proxy.example.com/wechat"}, want: []string{"WECHATPAY_BASE_URL: must be scheme and host only"}},
		{name: "base url scheme", cfg: wechatpay.Config{BaseURL: "ftp://x"}, want: []string{`WECHATPAY_BASE_URL: scheme must be https or http, got "ftp"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := wechatpay.NewClient(context.Background(), tt.cfg)
			for _, w := range tt.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

func TestHTTPClientIsUsed(t *testing.T) {
	t.Parallel()
	srv := wechatpaytest.NewServer(wechatpaytest.TestKeys(t))
	t.Cleanup(srv.Close)
	var calls atomic.Int64
	cfg := srv.ClientConfig(wechatpay.ModeAutoCertificate)
	cfg.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})}
	client, err := wechatpay.NewClient(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(client.Close)
	_, err = client.Import(context.Background(), wechatpay.ImportRequest{CardID: testCard, OpenID: testOpenID, OutRequestNo: nextNo()})
	require.NoError(t, err)
	// Two certificate downloads at start (bootstrap, then verified) and
	// the import, all through the given client and the sandbox's host.
	require.Equal(t, int64(3), calls.Load())
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

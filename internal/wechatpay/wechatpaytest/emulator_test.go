package wechatpaytest_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/validators"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"

	"github.com/cardimport/cardimport/internal/wechatpay"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

var cardCode = regexp.MustCompile(`^[0-9]{12}$`)

// otherKey is a merchant key WeChat does not know.
var otherKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func TestImportInEveryKeyMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		client     func(*testing.T, *wechatpaytest.Server) *core.Client
		wantSerial func(*wechatpaytest.Keys) string
	}{
		{"public key", publicKeyClient, func(k *wechatpaytest.Keys) string { return k.PublicKeyID }},
		{"platform certificate", platformCertClient, func(k *wechatpaytest.Keys) string { return k.PlatformSerial }},
		{"auto-downloaded certificates", autoDownloadClient, func(k *wechatpaytest.Keys) string { return k.PlatformSerial }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			client := tt.client(t, b.srv)

			code, res, err := doImport(t, client, b.srv.URL, testCard, importBody{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", OutRequestNo: "1900000001-20240601-1"})

			require.NoError(t, err)
			require.Regexp(t, cardCode, code)
			require.Equal(t, tt.wantSerial(b.keys), res.Response.Header.Get("Wechatpay-Serial"))
			require.NotEmpty(t, res.Response.Header.Get("Request-ID"))
			require.Equal(t, 1, b.srv.ImportCount(testCard, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"))
		})
	}
}

func TestRequestSignatureChecks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		opts        []wechatpaytest.Option
		mchID       string
		serial      string
		key         func(*wechatpaytest.Keys) *rsa.PrivateKey
		wantMessage string
	}{
		{name: "signed with another private key", key: func(*wechatpaytest.Keys) *rsa.PrivateKey { return otherKey() }, wantMessage: "signature does not verify"},
		{name: "serial of another certificate", serial: "5157F09EFDC096DE15EBE81A47057A7232F1B8E1", wantMessage: "serial_no"},
		{name: "another merchant", mchID: "1900000002", wantMessage: "mchid"},
		{name: "server clock 6 minutes ahead", opts: []wechatpaytest.Option{wechatpaytest.WithClock(func() time.Time { return time.Now().Add(6 * time.Minute) })}, wantMessage: "timestamp is 3"},
		{name: "server clock 6 minutes behind", opts: []wechatpaytest.Option{wechatpaytest.WithClock(func() time.Time { return time.Now().Add(-6 * time.Minute) })}, wantMessage: "timestamp is 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.opts...)
			k := b.keys
			mchID, serial, key := k.MchID, k.MchCertSerial, k.MchPrivateKey
			if tt.mchID != "" {
				mchID = tt.mchID
			}
			if tt.serial != "" {
				serial = tt.serial
			}
			if tt.key != nil {
				key = tt.key(k)
			}
			client, err := core.NewClient(t.Context(),
				option.WithWechatPayPublicKeyAuthCipher(mchID, serial, key, k.PublicKeyID, k.WechatPayPublicKey()),
				option.WithHTTPClient(b.srv.Client()))
			require.NoError(t, err)

			_, res, err := doImport(t, client, b.srv.URL, testCard, importBody{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", OutRequestNo: "n1"})

			apiErr := apiError(t, err)
			require.Equal(t, http.StatusUnauthorized, apiErr.StatusCode)
			require.Equal(t, "SIGN_ERROR", apiErr.Code)
			require.Contains(t, apiErr.Message, tt.wantMessage)
			require.NotEmpty(t, apiErr.Header.Get("Request-ID"))
			signature := authField(t, res.Request.Header.Get("Authorization"), "signature")
			require.NotContains(t, apiErr.Body, signature, "the answer must not echo the signature")
			require.Zero(t, b.srv.Stats().Imports)
			require.Equal(t, 1, b.srv.Stats().Refusals["SIGN_ERROR"])
		})
	}
}

// TestHandSignedRequests covers what the SDK never sends: other field
// orders, a missing header, a body changed after signing.
func TestHandSignedRequests(t *testing.T) {
	t.Parallel()
	body := []byte(`{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o","out_request_no":"hand-1"}`)
	tests := []struct {
		name        string
		header      func(k *wechatpaytest.Keys, uri string) string
		sentBody    []byte
		wantStatus  int
		wantMessage string
	}{
		{
			name: "fields in reverse order with spaces",
			header: func(k *wechatpaytest.Keys, uri string) string {
				ts, sig := sign(k.MchPrivateKey, uri, "NONCE1", body)
				return fmt.Sprintf(`WECHATPAY2-SHA256-RSA2048 signature="%s", serial_no="%s", timestamp="%s", nonce_str="NONCE1", mchid="%s"`, sig, k.MchCertSerial, ts, k.MchID)
			},
			sentBody:   body,
			wantStatus: http.StatusOK,
		},
		{
			name:        "no authorization",
			header:      func(*wechatpaytest.Keys, string) string { return "" },
			sentBody:    body,
			wantStatus:  http.StatusUnauthorized,
			wantMessage: "authorization header missing",
		},
		{
			name: "other scheme",
			header: func(k *wechatpaytest.Keys, uri string) string {
				return `WECHATPAY2-SHA256-RSA4096 mchid="x",nonce_str="x",timestamp="1",serial_no="x",signature="x"`
			},
			sentBody:    body,
			wantStatus:  http.StatusUnauthorized,
			wantMessage: "scheme",
		},
		{
			name: "body changed after signing",
			header: func(k *wechatpaytest.Keys, uri string) string {
				ts, sig := sign(k.MchPrivateKey, uri, "NONCE2", body)
				return fmt.Sprintf(`WECHATPAY2-SHA256-RSA2048 mchid="%s",nonce_str="NONCE2",timestamp="%s",serial_no="%s",signature="%s"`, k.MchID, ts, k.MchCertSerial, sig)
			},
			sentBody:    bytes.Replace(body, []byte("hand-1"), []byte("hand-2"), 1),
			wantStatus:  http.StatusUnauthorized,
			wantMessage: "signature does not verify",
		},
		{
			name: "signature not base64",
			header: func(k *wechatpaytest.Keys, uri string) string {
				ts, _ := sign(k.MchPrivateKey, uri, "NONCE3", body)
				return fmt.Sprintf(`WECHATPAY2-SHA256-RSA2048 mchid="%s",nonce_str="NONCE3",timestamp="%s",serial_no="%s",signature="!!"`, k.MchID, ts, k.MchCertSerial)
			},
			sentBody:    body,
			wantStatus:  http.StatusUnauthorized,
			wantMessage: "base64",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			uri := wechatpay.ImportPath(testCard)
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.srv.URL+uri, bytes.NewReader(tt.sentBody))
			require.NoError(t, err)
			if h := tt.header(b.keys, uri); h != "" {
				req.Header.Set("Authorization", h)
			}
			req.Header.Set("Wechatpay-Serial", b.keys.PublicKeyID)

			resp, err := b.srv.Client().Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()

			require.Equal(t, tt.wantStatus, resp.StatusCode)
			require.NotEmpty(t, resp.Header.Get("Request-ID"))
			if tt.wantStatus == http.StatusOK {
				v := validators.NewWechatPayResponseValidator(verifiers.NewSHA256WithRSAPubkeyVerifier(b.keys.PublicKeyID, *b.keys.WechatPayPublicKey()))
				require.NoError(t, v.Validate(t.Context(), resp))
				return
			}
			respBody, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Contains(t, string(respBody), `"code":"SIGN_ERROR"`)
			require.Contains(t, string(respBody), tt.wantMessage)
			require.Empty(t, resp.Header.Get("Wechatpay-Signature"), "error answers are unsigned")
		})
	}
}

func TestForgedAnswerIsRejectedByTheSDK(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		client func(*testing.T, *wechatpaytest.Server) *core.Client
	}{
		{"public key", publicKeyClient},
		{"platform certificate", platformCertClient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			client := tt.client(t, b.srv)
			body := importBody{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", OutRequestNo: "forged-1"}
			b.srv.ForgeNext(1)

			_, res, err := doImport(t, client, b.srv.URL, testCard, body)

			require.Error(t, err)
			var apiErr *core.APIError
			require.False(t, errors.As(err, &apiErr), "a forged 200 is not an error answer")
			require.True(t, strings.HasPrefix(res.Response.Header.Get("Wechatpay-Signature"), "WECHATPAY/SIGNTEST/"))
			require.Equal(t, 1, b.srv.ImportCount(testCard, body.OpenID), "the import behind a forged answer stands")

			code, _, err := doImport(t, client, b.srv.URL, testCard, body)

			require.NoError(t, err)
			require.Regexp(t, cardCode, code)
			require.Equal(t, 1, b.srv.ImportCount(testCard, body.OpenID))
			require.Equal(t, 1, b.srv.Stats().Replays)
		})
	}
}

func TestUnknownPath(t *testing.T) {
	t.Parallel()
	b := setup(t)

	_, err := b.client.Get(t.Context(), b.srv.URL+"/v3/marketing/membercard-open/cards")

	apiErr := apiError(t, err)
	require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
	require.Equal(t, "NOT_FOUND", apiErr.Code)
	require.NotEmpty(t, apiErr.Header.Get("Request-ID"))
}

// sign signs an import call the way wechatpay-go does, at the current time.
func sign(key *rsa.PrivateKey, uri, nonce string, body []byte) (timestamp, signature string) {
	return signRequest(key, http.MethodPost, uri, nonce, body)
}

// signRequest signs a call the way wechatpay-go does, at the current time.
func signRequest(key *rsa.PrivateKey, method, uri, nonce string, body []byte) (timestamp, signature string) {
	timestamp = strconv.FormatInt(time.Now().Unix(), 10)
	sum := sha256.Sum256([]byte(method + "\n" + uri + "\n" + timestamp + "\n" + nonce + "\n" + string(body) + "\n"))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		panic(err)
	}
	return timestamp, base64.StdEncoding.EncodeToString(sig)
}

// authField returns one field of an Authorization header the SDK wrote.
func authField(t *testing.T, header, name string) string {
	t.Helper()
	m := regexp.MustCompile(name + `="([^"]*)"`).FindStringSubmatch(header)
	require.Len(t, m, 2, "field %s not in authorization header", name)
	return m[1]
}

// TestErrorAnswersAreSigned: WeChat signs every answer to a request whose
// signature it verified, refusals included, with the key the client asked
// for; the SDK's validator, run on the error answer, accepts it.
func TestErrorAnswersAreSigned(t *testing.T) {
	t.Parallel()
	modes := []struct {
		name       string
		client     func(*testing.T, *wechatpaytest.Server) *core.Client
		validator  func(*wechatpaytest.Keys) *validators.WechatPayResponseValidator
		wantSerial func(*wechatpaytest.Keys) string
	}{
		{"public key", publicKeyClient, publicKeyValidator, func(k *wechatpaytest.Keys) string { return k.PublicKeyID }},
		{"platform certificate", platformCertClient, func(k *wechatpaytest.Keys) *validators.WechatPayResponseValidator {
			return platformValidator(k.PlatformCert)
		}, func(k *wechatpaytest.Keys) string { return k.PlatformSerial }},
	}
	calls := []struct {
		name       string
		setup      func(*wechatpaytest.Server)
		call       func(*testing.T, *core.Client, string) (*core.APIResult, error)
		wantStatus int
		wantCode   string
	}{
		{name: "404 unknown card", call: importCall("pUNKNOWN-card", importBody{OpenID: openid, OutRequestNo: "e1"}), wantStatus: 404, wantCode: "NOT_FOUND"},
		{name: "403 card of another merchant", call: importCall("pNOAUTH-card", importBody{OpenID: openid, OutRequestNo: "e1"}), wantStatus: 403, wantCode: "NO_AUTH"},
		{name: "400 already a member", setup: func(s *wechatpaytest.Server) { s.Seed(testCard, openid) }, call: importCall(testCard, importBody{OpenID: openid, OutRequestNo: "e1"}), wantStatus: 400, wantCode: "INVALID_REQUEST"},
		{name: "400 PARAM_ERROR", call: importCall(testCard, importBody{OpenID: openid, OutRequestNo: "e.1"}), wantStatus: 400, wantCode: "PARAM_ERROR"},
		{name: "500 FailNext", setup: func(s *wechatpaytest.Server) { s.FailNext(1, 500, "SYSTEM_ERROR", "系统错误") }, call: importCall(testCard, importBody{OpenID: openid, OutRequestNo: "e1"}), wantStatus: 500, wantCode: "SYSTEM_ERROR"},
		{name: "503 outage", setup: func(s *wechatpaytest.Server) { s.SetOutage(503) }, call: importCall(testCard, importBody{OpenID: openid, OutRequestNo: "e1"}), wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},
		{name: "404 unknown path under /v3/", call: func(t *testing.T, c *core.Client, base string) (*core.APIResult, error) {
			return c.Get(t.Context(), base+"/v3/marketing/membercard-open/cards")
		}, wantStatus: 404, wantCode: "NOT_FOUND"},
		{name: "400 list limit over 20", call: func(t *testing.T, c *core.Client, base string) (*core.APIResult, error) {
			_, res, err := listCards(t, c, listURL(base, openid, "limit", "21"))
			return res, err
		}, wantStatus: 400, wantCode: "PARAM_ERROR"},
	}
	for _, mode := range modes {
		for _, tt := range calls {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				if tt.setup != nil {
					tt.setup(b.srv)
				}
				client := mode.client(t, b.srv)

				res, err := tt.call(t, client, b.srv.URL)

				apiErr := apiError(t, err)
				require.Equal(t, tt.wantStatus, apiErr.StatusCode)
				require.Equal(t, tt.wantCode, apiErr.Code)
				require.Equal(t, mode.wantSerial(b.keys), res.Response.Header.Get("Wechatpay-Serial"))
				require.NotEmpty(t, res.Response.Header.Get("Request-ID"))
				require.NoError(t, mode.validator(b.keys).Validate(t.Context(), res.Response), "the SDK's validator accepts the error answer")
			})
		}
	}
}

// TestAnswersBeforeVerificationAreUnsigned: 401 (WeChat could not trust
// the request) and 429 (the rate limit comes before the signature check)
// carry no signature.
func TestAnswersBeforeVerificationAreUnsigned(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		opts     []wechatpaytest.Option
		key      func(*wechatpaytest.Keys) *rsa.PrivateKey
		wantCode string
	}{
		{name: "401 SIGN_ERROR", key: func(*wechatpaytest.Keys) *rsa.PrivateKey { return otherKey() }, wantCode: "SIGN_ERROR"},
		{name: "429 RATELIMIT_EXCEEDED", opts: []wechatpaytest.Option{wechatpaytest.WithRateLimit(1), wechatpaytest.WithClock(newFakeClock().Now)}, wantCode: "RATELIMIT_EXCEEDED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.opts...)
			k := b.keys
			key := k.MchPrivateKey
			if tt.key != nil {
				key = tt.key(k)
			}
			client, err := core.NewClient(t.Context(),
				option.WithWechatPayPublicKeyAuthCipher(k.MchID, k.MchCertSerial, key, k.PublicKeyID, k.WechatPayPublicKey()),
				option.WithHTTPClient(b.srv.Client()))
			require.NoError(t, err)
			// Under the rate limit of one a second (the clock stands
			// still), the first call passes and the second is refused.
			if tt.wantCode == "RATELIMIT_EXCEEDED" {
				_, _, err := doImport(t, client, b.srv.URL, testCard, importBody{OpenID: openid, OutRequestNo: "u0"})
				require.NoError(t, err)
			}

			_, res, err := doImport(t, client, b.srv.URL, testCard, importBody{OpenID: openid + "1", OutRequestNo: "u1"})

			require.Equal(t, tt.wantCode, apiError(t, err).Code)
			requireUnsigned(t, k, res.Response)
			require.NotEmpty(t, res.Response.Header.Get("Request-ID"), "still WeChat's answer")
		})
	}
}

// importCall is an import through the client, for tables of calls.
func importCall(card string, body importBody) func(*testing.T, *core.Client, string) (*core.APIResult, error) {
	return func(t *testing.T, c *core.Client, baseURL string) (*core.APIResult, error) {
		_, res, err := doImport(t, c, baseURL, card, body)
		return res, err
	}
}

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
	timestamp = strconv.FormatInt(time.Now().Unix(), 10)
	sum := sha256.Sum256([]byte("POST\n" + uri + "\n" + timestamp + "\n" + nonce + "\n" + string(body) + "\n"))
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

package wechatpaytest_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/validators"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/downloader"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"

	"github.com/cardimport/cardimport/internal/wechatpay"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

// testCard is the card id of WeChat's own examples.
const testCard = "pbLatjvWOibDc5-TBnbUk1pD12o0"

// importBody is what the worker sends.
type importBody struct {
	OpenID       string `json:"openid"`
	Code         string `json:"code,omitempty"`
	OutRequestNo string `json:"out_request_no"`
}

// testBundle is one test's emulator and a public-key-mode client for it.
type testBundle struct {
	srv    *wechatpaytest.Server
	keys   *wechatpaytest.Keys
	client *core.Client
}

func setup(t *testing.T, opts ...wechatpaytest.Option) *testBundle {
	t.Helper()
	keys := wechatpaytest.TestKeys(t)
	srv := wechatpaytest.NewServer(keys, opts...)
	t.Cleanup(srv.Close)
	return &testBundle{srv: srv, keys: keys, client: publicKeyClient(t, srv)}
}

// importMember calls the import endpoint through the bundle's client.
func (b *testBundle) importMember(t *testing.T, card string, body importBody) (string, *core.APIResult, error) {
	t.Helper()
	return doImport(t, b.client, b.srv.URL, card, body)
}

func doImport(t *testing.T, client *core.Client, baseURL, card string, body importBody) (string, *core.APIResult, error) {
	t.Helper()
	res, err := client.Post(t.Context(), baseURL+wechatpay.ImportPath(card), body)
	if err != nil {
		return "", res, err
	}
	var out struct {
		Code string `json:"code"`
	}
	if res.Response.StatusCode == http.StatusOK {
		require.NoError(t, core.UnMarshalResponse(res.Response, &out))
	}
	return out.Code, res, nil
}

// apiError requires err to be WeChat's error answer, as the SDK reports it.
func apiError(t *testing.T, err error) *core.APIError {
	t.Helper()
	var apiErr *core.APIError
	require.True(t, errors.As(err, &apiErr), "want *core.APIError, got %T", err)
	return apiErr
}

func publicKeyClient(t *testing.T, srv *wechatpaytest.Server) *core.Client {
	t.Helper()
	k := srv.Keys
	c, err := core.NewClient(t.Context(),
		option.WithWechatPayPublicKeyAuthCipher(k.MchID, k.MchCertSerial, k.MchPrivateKey, k.PublicKeyID, k.WechatPayPublicKey()),
		option.WithHTTPClient(srv.Client()))
	require.NoError(t, err)
	return c
}

func platformCertClient(t *testing.T, srv *wechatpaytest.Server) *core.Client {
	t.Helper()
	k := srv.Keys
	c, err := core.NewClient(t.Context(),
		option.WithWechatPayAuthCipher(k.MchID, k.MchCertSerial, k.MchPrivateKey, []*x509.Certificate{k.PlatformCert}),
		option.WithHTTPClient(srv.Client()))
	require.NoError(t, err)
	return c
}

// autoDownloadClient is a client in auto mode: its answers are verified
// with the certificates a downloader fetched from GET /v3/certificates.
// The downloader always calls the production host, so its HTTP client
// rewrites the host to the emulator's.
//
// wechatpay-go's own RegisterDownloaderWithPrivateKey makes the first
// download without verifying the answer (the certificate is still
// authenticated by the APIv3 key's AES-GCM). Here the downloader's client
// pins the platform certificate instead, so that no answer in these tests
// goes unverified; the import client still trusts only what was downloaded.
func autoDownloadClient(t *testing.T, srv *wechatpaytest.Server) *core.Client {
	t.Helper()
	c, _ := autoDownloadClientAndMgr(t, srv)
	return c
}

// autoDownloadClientAndMgr is autoDownloadClient with the downloader
// manager, for tests that download again after a rotation.
func autoDownloadClientAndMgr(t *testing.T, srv *wechatpaytest.Server) (*core.Client, *downloader.CertificateDownloaderMgr) {
	t.Helper()
	k := srv.Keys
	target, err := url.Parse(srv.URL)
	require.NoError(t, err)
	rewriting := &http.Client{Transport: rewriteHost{target: target, base: srv.Client().Transport}}
	dl, err := core.NewClient(t.Context(),
		option.WithWechatPayAuthCipher(k.MchID, k.MchCertSerial, k.MchPrivateKey, []*x509.Certificate{k.PlatformCert}),
		option.WithHTTPClient(rewriting))
	require.NoError(t, err)
	mgr := downloader.NewCertificateDownloaderMgr(t.Context())
	t.Cleanup(mgr.Stop)
	require.NoError(t, mgr.RegisterDownloaderWithClient(t.Context(), dl, k.MchID, k.APIv3Key))
	require.NotNil(t, mgr.GetCertificateVisitor(k.MchID).GetAll(t.Context())[k.PlatformSerial], "platform certificate not downloaded")
	c, err := core.NewClient(t.Context(),
		option.WithWechatPayAutoAuthCipherUsingDownloaderMgr(k.MchID, k.MchCertSerial, k.MchPrivateKey, mgr),
		option.WithHTTPClient(srv.Client()))
	require.NoError(t, err)
	return c, mgr
}

// rewriteHost sends every request to target, whatever host it names.
type rewriteHost struct {
	target *url.URL
	base   http.RoundTripper
}

func (rt rewriteHost) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host, r.Host = rt.target.Scheme, rt.target.Host, rt.target.Host
	return rt.base.RoundTrip(r)
}

// publicKeyValidator verifies answers the way a public-key-mode client
// does; it runs on any *http.Response, error answers included.
func publicKeyValidator(k *wechatpaytest.Keys) *validators.WechatPayResponseValidator {
	return validators.NewWechatPayResponseValidator(verifiers.NewSHA256WithRSAPubkeyVerifier(k.PublicKeyID, *k.WechatPayPublicKey()))
}

// platformValidator verifies answers with the given platform certificates,
// as a platform-certificate-mode client holding them does.
func platformValidator(certs ...*x509.Certificate) *validators.WechatPayResponseValidator {
	return validators.NewWechatPayResponseValidator(verifiers.NewSHA256WithRSAVerifier(core.NewCertificateMapWithList(certs)))
}

// clientWithCerts is a platform-certificate-mode client that trusts certs.
func clientWithCerts(t *testing.T, srv *wechatpaytest.Server, certs ...*x509.Certificate) *core.Client {
	t.Helper()
	k := srv.Keys
	c, err := core.NewClient(t.Context(),
		option.WithWechatPayAuthCipher(k.MchID, k.MchCertSerial, k.MchPrivateKey, certs),
		option.WithHTTPClient(srv.Client()))
	require.NoError(t, err)
	return c
}

// listURL is the list call for openid with the given query parameters
// added (offset, limit, appid…), as pairs.
func listURL(baseURL, openid string, pairs ...string) string {
	q := url.Values{}
	if openid != "" {
		q.Set("openid", openid)
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		q.Set(pairs[i], pairs[i+1])
	}
	return baseURL + "/v3/marketing/membercard-open/user/cards?" + q.Encode()
}

// listPage is the body of the list call.
type listPage struct {
	Data []struct {
		CardID string `json:"card_id"`
		Code   string `json:"code"`
	} `json:"data"`
	TotalCount int `json:"total_count"`
	Offset     int `json:"offset"`
	Limit      int `json:"limit"`
}

// listCards calls the list endpoint through client: the page of a
// verified 200, or the SDK's error.
func listCards(t *testing.T, client *core.Client, rawURL string) (listPage, *core.APIResult, error) {
	t.Helper()
	res, err := client.Get(t.Context(), rawURL)
	if err != nil {
		return listPage{}, res, err
	}
	var page listPage
	require.NoError(t, core.UnMarshalResponse(res.Response, &page))
	return page, res, nil
}

// requireUnsigned requires an answer to carry none of WeChat's signature
// headers, and the SDK's validator to refuse it.
func requireUnsigned(t *testing.T, k *wechatpaytest.Keys, resp *http.Response) {
	t.Helper()
	for _, h := range []string{"Wechatpay-Signature", "Wechatpay-Serial", "Wechatpay-Timestamp", "Wechatpay-Nonce"} {
		require.Empty(t, resp.Header.Get(h), h)
	}
	require.Error(t, publicKeyValidator(k).Validate(context.Background(), resp))
}

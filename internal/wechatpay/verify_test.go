package wechatpay_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/wechatpay"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

// TestRedirectIsNotFollowed: a 3xx naming another host is an unknown
// outcome, and that host never sees the signed request.
func TestRedirectIsNotFollowed(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(other.Close)
	for _, status := range []int{301, 302, 307, 308} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			b := setup(t, wechatpay.ModePublicKey)
			b.srv.RedirectNext(1, status, other.URL+"/v3/marketing/membercard-open/cards/"+testCard+"/users/import")
			_, err := b.importMember(t, testOpenID)
			require.Equal(t, wechatpay.KindTransient, wechatpay.KindOf(err))
			require.ErrorContains(t, err, "redirect not followed (to host 127.0.0.1)")
			require.Zero(t, hits.Load(), "the redirect's target got the signed request")
			require.Zero(t, b.srv.ImportCount(testCard, testOpenID))
		})
	}
}

// TestFindCard pages through WeChat's list of a member's cards.
func TestFindCard(t *testing.T) {
	t.Parallel()
	b := setup(t, wechatpay.ModePublicKey)
	// A holder of 25 cards, ours last among them: the list is paged.
	var others []string
	for i := range 24 {
		others = append(others, fmt.Sprintf("pOtherCard%02d", i))
	}
	holder := "oUpF8uHolderOf25Cards_0001"
	b.srv.SeedCards(holder, others...)
	code := b.srv.Seed(testCard, holder)
	listsBefore := b.srv.Stats().Lists
	got, err := wechatpay.FindCard(context.Background(), b.client, holder, testCard)
	require.NoError(t, err)
	require.True(t, got.Held)
	require.Equal(t, code, got.Code)
	require.Equal(t, 2, b.srv.Stats().Lists-listsBefore, "25 cards take two pages of 20")

	got, err = wechatpay.FindCard(context.Background(), b.client, "oUpF8uNobodyHoldsAnything01", testCard)
	require.NoError(t, err)
	require.False(t, got.Held)

	// A list WeChat did not sign, or refused, settles nothing.
	b.srv.ForgeNextList(1)
	_, err = wechatpay.FindCard(context.Background(), b.client, holder, testCard)
	require.Equal(t, wechatpay.KindUnverified, wechatpay.KindOf(err))
	b.srv.FailNextList(1, 400, "PARAM_ERROR", "参数错误")
	_, err = wechatpay.FindCard(context.Background(), b.client, holder, testCard)
	require.Equal(t, wechatpay.KindTransient, wechatpay.KindOf(err), "a refused list is retried, never settled on")
	require.ErrorContains(t, err, "list cards: 参数错误")
}

func TestConfigChecksAtStart(t *testing.T) {
	t.Parallel()
	keys := wechatpaytest.TestKeys(t)
	srv := wechatpaytest.NewServer(keys)
	t.Cleanup(srv.Close)
	tests := []struct {
		name   string
		change func(c *wechatpay.Config)
		want   string
	}{
		{name: "merchant's own certificate as the platform certificate", change: func(c *wechatpay.Config) {
			c.PlatformCertificates = []*x509.Certificate{keys.MchCert}
		}, want: "WECHATPAY_PLATFORM_CERT_FILE: holds the merchant's own API certificate"},
		{name: "public key id that is a serial", change: func(c *wechatpay.Config) {
			c.PublicKeyID = keys.PlatformSerial
		}, want: "WECHATPAY_PUBLIC_KEY_ID: must start with PUB_KEY_ID_"},
		{name: "http to a host off loopback", change: func(c *wechatpay.Config) {
			c.BaseURL = "http://sandbox.internal:8080"
		}, want: "WECHATPAY_BASE_URL: http:// is allowed only to a loopback host (set WECHATPAY_ALLOW_HTTP=1"},
		{name: "backup over http off loopback", change: func(c *wechatpay.Config) {
			c.BackupBaseURL = "http://10.0.0.8"
		}, want: "WECHATPAY_BACKUP_BASE_URL: http:// is allowed only to a loopback host"},
		{name: "http off loopback, allowed", change: func(c *wechatpay.Config) {
			c.BaseURL, c.AllowHTTP = "http://sandbox:8080", true
		}},
		{name: "http to localhost", change: func(c *wechatpay.Config) { c.BaseURL = "http://localhost:8080" }},
		{name: "http to ::1", change: func(c *wechatpay.Config) { c.BaseURL = "http://[::1]:8080" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := srv.ClientConfig(wechatpay.ModePlatformCertificate)
			tt.change(&cfg)
			err := cfg.Validate()
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
			_, err = wechatpay.NewClient(context.Background(), cfg)
			require.ErrorContains(t, err, tt.want, "the client refuses to start")
		})
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	keys := wechatpaytest.TestKeys(t)
	srv := wechatpaytest.NewServer(keys)
	t.Cleanup(srv.Close)
	other, err := wechatpaytest.GenerateKeys()
	require.NoError(t, err)
	tests := []struct {
		name   string
		mode   wechatpay.Mode
		change func(c *wechatpay.Config)
		want   func(t *testing.T, r wechatpay.CheckReport)
	}{
		{name: "all good, public key", mode: wechatpay.ModePublicKey, want: func(t *testing.T, r wechatpay.CheckReport) {
			require.True(t, r.OK(), "%+v", r)
			require.Equal(t, keys.PublicKeyID, r.Serial)
			require.True(t, r.HasDate)
			require.Less(t, r.ClockOffset.Abs().Seconds(), 2.0)
		}},
		{name: "all good, auto download", mode: wechatpay.ModeAutoCertificate, want: func(t *testing.T, r wechatpay.CheckReport) {
			require.True(t, r.OK(), "%+v", r)
			require.Equal(t, keys.PlatformSerial, r.Serial)
		}},
		{name: "another merchant key", mode: wechatpay.ModePublicKey, change: func(c *wechatpay.Config) {
			c.MchPrivateKey = other.MchPrivateKey
		}, want: func(t *testing.T, r wechatpay.CheckReport) {
			require.False(t, r.OK())
			require.False(t, r.SignatureAccepted)
			require.Contains(t, r.Refusal, "401 SIGN_ERROR")
		}},
		{name: "another WeChat public key", mode: wechatpay.ModePublicKey, change: func(c *wechatpay.Config) {
			c.PublicKey = other.WechatPayPublicKey()
		}, want: func(t *testing.T, r wechatpay.CheckReport) {
			require.False(t, r.OK())
			require.True(t, r.SignatureAccepted)
			require.False(t, r.Verified)
			require.Error(t, r.VerifyErr)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := srv.ClientConfig(tt.mode)
			if tt.change != nil {
				tt.change(&cfg)
			}
			client, err := wechatpay.NewClient(context.Background(), cfg)
			require.NoError(t, err)
			tt.want(t, client.Check(context.Background()))
		})
	}
}

// TestCertificateRotationInAutoMode: after WeChat moves to a new platform
// certificate, the first answer signed with it makes the client download
// the certificates again and verify; a second rotation within the minute
// does not download again, and its answers stay unverified until then.
func TestCertificateRotationInAutoMode(t *testing.T) {
	t.Parallel()
	b := setup(t, wechatpay.ModeAutoCertificate)
	start := len(b.srv.CertificateDownloads())
	_, err := b.srv.RotatePlatformCertificate()
	require.NoError(t, err)
	for i := range 5 {
		res, err := b.importMember(t, fmt.Sprintf("oUpF8uRotated_%04d", i))
		require.NoError(t, err, "answers signed with the new certificate verify after one download")
		require.NotEmpty(t, res.Code)
	}
	require.Len(t, b.srv.CertificateDownloads(), start+1, "one download for the rotation")

	_, err = b.srv.RotatePlatformCertificate()
	require.NoError(t, err)
	_, err = b.importMember(t, "oUpF8uRotatedAgain_0001")
	require.Equal(t, wechatpay.KindUnverified, wechatpay.KindOf(err), "no second download within the minute")
	require.Len(t, b.srv.CertificateDownloads(), start+1)
	require.True(t, strings.Contains(err.Error(), "signature does not verify"), err.Error())
}

// TestDecisionTableIsDocumented: the table in docs/wechat-answers.md is
// the decision in code, row for row.
func TestDecisionTableIsDocumented(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../docs/wechat-answers.md")
	require.NoError(t, err)
	table := wechatpay.DecisionTableMarkdown()
	require.Contains(t, string(data), table, "docs/wechat-answers.md is out of date; its table must read:\n%s", table)
}

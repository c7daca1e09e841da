// Package wechatpay is the only package that talks to WeChat Pay. It builds
// a wechatpay-go client for any of the three ways a merchant holds WeChat's
// key, calls the import-member-card-by-openid API, and turns every answer
// into one of our error kinds (see Kind), so the task handler never looks at
// HTTP statuses or WeChat codes.
package wechatpay

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/signers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/validators"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/consts"
	"github.com/wechatpay-apiv3/wechatpay-go/core/downloader"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
)

// DefaultBaseURL is WeChat Pay's production API host.
const DefaultBaseURL = consts.WechatPayAPIServer

// DefaultBackupBaseURL is WeChat Pay's backup host, which WeChat asks
// merchants to use when the production host cannot be reached.
const DefaultBackupBaseURL = "https://api2.mch.weixin.qq.com"

// DefaultHTTPTimeout bounds one call to WeChat. wechatpay-go's own default
// is 30 s; we take 15 s so a hung connection is given up well inside the
// task's attempt timeout and retried under the same out_request_no.
const DefaultHTTPTimeout = 15 * time.Second

// DefaultDialTimeout bounds opening a connection (name lookup included),
// so that an unreachable production host is given up in time to try the
// backup host within the same attempt.
const DefaultDialTimeout = 5 * time.Second

// MaxImportDuration is the longest Client.Import takes with the default
// HTTP client: a dial to the production host that fails after
// DefaultDialTimeout, then a whole call to the backup host. Whoever bounds
// an attempt (the task's timeout, the guard's waiting) must leave this much
// for the call, or the attempt is cut short mid-call.
const MaxImportDuration = DefaultDialTimeout + DefaultHTTPTimeout

// Mode is how the client verifies WeChat's answers.
type Mode string

// The three ways a merchant holds WeChat's key, and the two at once while a
// merchant moves from platform certificates to the public key.
const (
	ModePublicKey           Mode = "public_key"
	ModePlatformCertificate Mode = "platform_certificate"
	ModeAutoCertificate     Mode = "auto_certificate"
	ModeMixed               Mode = "public_key+platform_certificate"
)

// Config is what a Client needs: the merchant's identity and key, and one way
// to verify WeChat's answers.
type Config struct {
	// BaseURL is scheme and host of the API, e.g. a sandbox's address.
	// Defaults to DefaultBaseURL.
	BaseURL string
	// BackupBaseURL is tried when BaseURL cannot be reached at all (the
	// connection fails), within the same attempt and with the same
	// out_request_no. Defaults to DefaultBackupBaseURL when BaseURL is the
	// production host, and to none otherwise.
	BackupBaseURL string
	// MchID is the merchant number. Required.
	MchID string
	// MchCertSerial is the serial of the merchant API certificate. Required.
	MchCertSerial string
	// MchPrivateKey is the merchant API private key. Required.
	MchPrivateKey *rsa.PrivateKey
	// PublicKeyID and PublicKey select public-key mode. Defaults to unset.
	PublicKeyID string
	PublicKey   *rsa.PublicKey
	// PlatformCertificates select platform-certificate mode. Defaults to
	// unset. Together with PublicKey, answers signed by either verify.
	PlatformCertificates []*x509.Certificate
	// APIv3Key selects auto-download mode: platform certificates are fetched
	// from BaseURL's /v3/certificates and refreshed. Defaults to unset.
	APIv3Key string
	// HTTPClient sends the requests. Defaults to a client with
	// DefaultHTTPTimeout and enough idle connections for a busy worker.
	HTTPClient *http.Client
}

// Mode reports which verification mode the configuration selects, or an
// error when it selects none or conflicting ones.
func (c Config) Mode() (Mode, error) {
	hasPub := c.PublicKey != nil || c.PublicKeyID != ""
	hasCerts := len(c.PlatformCertificates) > 0
	hasAuto := c.APIv3Key != ""
	switch {
	case hasAuto && (hasPub || hasCerts):
		return "", errors.New("WECHATPAY_APIV3_KEY_FILE: auto-download mode cannot be combined with a public key or platform certificate file")
	case hasAuto:
		return ModeAutoCertificate, nil
	case hasPub && (c.PublicKey == nil || c.PublicKeyID == ""):
		return "", errors.New("WECHATPAY_PUBLIC_KEY_ID and WECHATPAY_PUBLIC_KEY_FILE: public-key mode needs both")
	case hasPub && hasCerts:
		return ModeMixed, nil
	case hasPub:
		return ModePublicKey, nil
	case hasCerts:
		return ModePlatformCertificate, nil
	}
	return "", errors.New("WECHATPAY_PUBLIC_KEY_FILE, WECHATPAY_PLATFORM_CERT_FILE or WECHATPAY_APIV3_KEY_FILE: one is required to verify WeChat's answers")
}

// Validate reports every missing or conflicting setting, each naming its
// environment variable.
func (c Config) Validate() error {
	var errs []error
	if c.MchID == "" {
		errs = append(errs, errors.New("WECHATPAY_MCHID: is required"))
	}
	if c.MchCertSerial == "" {
		errs = append(errs, errors.New("WECHATPAY_MCH_CERT_SERIAL: is required"))
	}
	if c.MchPrivateKey == nil {
		errs = append(errs, errors.New("WECHATPAY_MCH_PRIVATE_KEY_FILE: is required"))
	}
	if _, err := c.Mode(); err != nil {
		errs = append(errs, err)
	}
	if _, err := ParseBaseURL(c.BaseURL); err != nil {
		errs = append(errs, err)
	}
	if c.BackupBaseURL != "" {
		if _, err := ParseBaseURL(c.BackupBaseURL); err != nil {
			errs = append(errs, fmt.Errorf("backup %w", err))
		}
	}
	return errors.Join(errs...)
}

// ParseBaseURL checks a WECHATPAY_BASE_URL value: scheme and host only,
// because the signature covers the request path and a path prefix would
// break it. Empty means DefaultBaseURL.
func ParseBaseURL(raw string) (*url.URL, error) {
	if raw == "" {
		raw = DefaultBaseURL
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, fmt.Errorf("WECHATPAY_BASE_URL: %v", err)
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("WECHATPAY_BASE_URL: scheme must be https or http, got %q", u.Scheme)
	case u.Host == "":
		return nil, errors.New("WECHATPAY_BASE_URL: has no host")
	case strings.Trim(u.Path, "/") != "" || u.RawQuery != "":
		return nil, errors.New("WECHATPAY_BASE_URL: must be scheme and host only, without a path or query")
	}
	u.Path = ""
	return u, nil
}

// Client imports member cards through WeChat Pay API v3.
type Client struct {
	core      *core.Client
	baseURL   string
	backupURL string
	mode      Mode
	mgr       *downloader.CertificateDownloaderMgr
}

// NewClient builds a client. In auto-download mode it downloads WeChat's
// platform certificates from cfg.BaseURL before returning, so a wrong APIv3
// key or a merchant without certificates fails here, at start.
func NewClient(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base, _ := ParseBaseURL(cfg.BaseURL)
	mode, _ := cfg.Mode()
	hc := cfg.HTTPClient
	if hc == nil {
		hc = defaultHTTPClient()
	}
	signer := &signers.SHA256WithRSASigner{
		MchID:               cfg.MchID,
		CertificateSerialNo: cfg.MchCertSerial,
		PrivateKey:          cfg.MchPrivateKey,
	}
	c := &Client{baseURL: base.String(), backupURL: backupURL(cfg, base), mode: mode}
	var verify core.ClientOption
	switch mode {
	case ModePublicKey:
		verify = option.WithWechatPayPublicKeyAuthCipher(cfg.MchID, cfg.MchCertSerial, cfg.MchPrivateKey, cfg.PublicKeyID, cfg.PublicKey)
	case ModePlatformCertificate:
		verify = option.WithWechatPayAuthCipher(cfg.MchID, cfg.MchCertSerial, cfg.MchPrivateKey, cfg.PlatformCertificates)
	case ModeMixed:
		// While a merchant switches to the public key, WeChat may sign with
		// either; the combined verifier asks for the public key first.
		verify = option.WithVerifier(verifiers.NewSHA256WithRSACombinedVerifier(
			core.NewCertificateMapWithList(cfg.PlatformCertificates), cfg.PublicKeyID, *cfg.PublicKey))
	case ModeAutoCertificate:
		mgr, err := newDownloaderMgr(ctx, signer, cfg, base, hc)
		if err != nil {
			return nil, err
		}
		c.mgr = mgr
		verify = option.WithWechatPayAutoAuthCipherUsingDownloaderMgr(cfg.MchID, cfg.MchCertSerial, cfg.MchPrivateKey, mgr)
	}
	cc, err := core.NewClient(ctx, verify, option.WithSigner(signer), option.WithHTTPClient(hc))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("wechat pay client: %w", err)
	}
	c.core = cc
	return c, nil
}

// newDownloaderMgr registers a certificate downloader of our own rather than
// wechatpay-go's process-wide singleton, which always calls the production
// host: ours sends /v3/certificates through a transport that rewrites that
// host to base, so WECHATPAY_BASE_URL works in this mode too.
//
// Nothing can verify the very first download's signature, since the
// certificates are what it fetches; what vouches for them is their AES-GCM
// encryption under the merchant's APIv3 key. We take that bootstrap set only
// to verify a second download, the one the manager keeps and refreshes, so
// every certificate the client trusts came in a signed, verified answer.
func newDownloaderMgr(ctx context.Context, signer *signers.SHA256WithRSASigner, cfg Config, base *url.URL, hc *http.Client) (*downloader.CertificateDownloaderMgr, error) {
	rewritten := *hc
	rewritten.Transport = &hostRewriter{to: base, next: transportOf(hc)}
	newClient := func(v auth.Validator) (*core.Client, error) {
		return core.NewClientWithDialSettings(ctx, &core.DialSettings{Signer: signer, Validator: v, HTTPClient: &rewritten})
	}
	bootClient, err := newClient(&validators.NullValidator{})
	if err != nil {
		return nil, fmt.Errorf("certificate downloader: %w", err)
	}
	boot, err := downloader.NewCertificateDownloaderWithClient(ctx, bootClient, cfg.APIv3Key)
	if err != nil {
		return nil, fmt.Errorf("WECHATPAY_APIV3_KEY_FILE: download platform certificates: %s", describe(err))
	}
	verified, err := newClient(validators.NewWechatPayResponseValidator(verifiers.NewSHA256WithRSAVerifier(boot)))
	if err != nil {
		return nil, fmt.Errorf("certificate downloader: %w", err)
	}
	mgr := downloader.NewCertificateDownloaderMgr(context.WithoutCancel(ctx))
	if err := mgr.RegisterDownloaderWithClient(ctx, verified, cfg.MchID, cfg.APIv3Key); err != nil {
		mgr.Stop()
		return nil, fmt.Errorf("WECHATPAY_APIV3_KEY_FILE: download platform certificates: %s", describe(err))
	}
	return mgr, nil
}

// backupURL returns the host to fail over to, if any.
func backupURL(cfg Config, base *url.URL) string {
	if cfg.BackupBaseURL != "" {
		u, _ := ParseBaseURL(cfg.BackupBaseURL)
		return u.String()
	}
	if base.String() == DefaultBaseURL {
		return DefaultBackupBaseURL
	}
	return ""
}

// Mode reports how the client verifies WeChat's answers.
func (c *Client) Mode() Mode { return c.mode }

// Close stops the certificate refresh of auto-download mode.
func (c *Client) Close() {
	if c.mgr != nil {
		c.mgr.Stop()
	}
}

func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// A worker runs many imports at once against one host; Go's default of
	// two idle connections per host would reopen a TLS connection per call.
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 256
	t.DialContext = (&net.Dialer{Timeout: DefaultDialTimeout, KeepAlive: 30 * time.Second}).DialContext
	return &http.Client{Timeout: DefaultHTTPTimeout, Transport: t}
}

func transportOf(hc *http.Client) http.RoundTripper {
	if hc.Transport != nil {
		return hc.Transport
	}
	return http.DefaultTransport
}

// hostRewriter sends requests addressed to WeChat's production host to
// another host, keeping path and query (which the signature covers).
type hostRewriter struct {
	to   *url.URL
	next http.RoundTripper
}

func (h *hostRewriter) RoundTrip(r *http.Request) (*http.Response, error) {
	prod, _ := url.Parse(DefaultBaseURL)
	if r.URL.Host != prod.Host || h.to.Host == prod.Host {
		return h.next.RoundTrip(r)
	}
	r2 := r.Clone(r.Context())
	r2.URL.Scheme = h.to.Scheme
	r2.URL.Host = h.to.Host
	r2.Host = ""
	return h.next.RoundTrip(r2)
}

// describe renders an error from wechatpay-go without the headers and body
// that *core.APIError.Error prints.
func describe(err error) string {
	var apiErr *core.APIError
	if errors.As(err, &apiErr) {
		return fmt.Sprintf("http %d %s: %s [request_id %s]", apiErr.StatusCode, apiErr.Code, apiErr.Message, apiErr.Header.Get("Request-ID"))
	}
	return err.Error()
}

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

	"github.com/rs/zerolog"
	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/signers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/validators"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/consts"
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
	// Defaults to DefaultBaseURL. http:// is accepted only for a loopback
	// host, or with AllowHTTP.
	BaseURL string
	// BackupBaseURL is tried when BaseURL cannot be reached at all (the
	// connection fails), within the same attempt and with the same
	// out_request_no. Defaults to DefaultBackupBaseURL when BaseURL is the
	// production host, and to none otherwise.
	BackupBaseURL string
	// AllowHTTP accepts an http:// BaseURL on a host that is not loopback,
	// such as a sandbox on docker-compose's private network
	// (WECHATPAY_ALLOW_HTTP). Defaults to false: the signed requests, the
	// openids and the answers would cross a network in the clear.
	AllowHTTP bool
	// MchID is the merchant number. Required.
	MchID string
	// MchCertSerial is the serial of the merchant API certificate. Required.
	MchCertSerial string
	// MchPrivateKey is the merchant API private key. Required.
	MchPrivateKey *rsa.PrivateKey
	// AppID is the brand's service-account AppID, sent with the list of a
	// member's cards (WECHATPAY_APPID). Defaults to none: WeChat then lists
	// the member's cards of every AppID.
	AppID string
	// PublicKeyID and PublicKey select public-key mode. Defaults to unset.
	PublicKeyID string
	PublicKey   *rsa.PublicKey
	// PlatformCertificates select platform-certificate mode. Defaults to
	// unset. Together with PublicKey, answers signed by either verify.
	PlatformCertificates []*x509.Certificate
	// APIv3Key selects auto-download mode: platform certificates are fetched
	// from BaseURL's /v3/certificates, and again when an answer is signed
	// with a serial not yet downloaded. Defaults to unset.
	APIv3Key string
	// HTTPClient sends the requests. It is copied, and the copy never
	// follows a redirect. Defaults to a client with DefaultHTTPTimeout and
	// enough idle connections for a busy worker.
	HTTPClient *http.Client
	// Logger receives the certificate downloads of auto-download mode.
	// Defaults to a logger that discards everything.
	Logger *zerolog.Logger
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

// publicKeyIDPrefix starts every WeChat Pay public key id; a certificate
// serial (hex) in WECHATPAY_PUBLIC_KEY_ID is a mix-up of the two modes.
const publicKeyIDPrefix = "PUB_KEY_ID_"

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
	if c.PublicKeyID != "" && !strings.HasPrefix(c.PublicKeyID, publicKeyIDPrefix) {
		errs = append(errs, fmt.Errorf("WECHATPAY_PUBLIC_KEY_ID: must start with %s (the id WeChat Pay shows beside its public key), got %q", publicKeyIDPrefix, c.PublicKeyID))
	}
	for _, cert := range c.PlatformCertificates {
		if c.isMerchantCertificate(cert) {
			errs = append(errs, errors.New("WECHATPAY_PLATFORM_CERT_FILE: holds the merchant's own API certificate (serial WECHATPAY_MCH_CERT_SERIAL); it must hold WeChat Pay's platform certificate, which signs WeChat's answers"))
			break
		}
	}
	errs = append(errs, c.validateBaseURLs()...)
	return errors.Join(errs...)
}

// isMerchantCertificate reports whether cert is the merchant's own API
// certificate, by its serial or by its key: verifying WeChat's answers with
// it fails every time, and every member would burn its retries.
func (c Config) isMerchantCertificate(cert *x509.Certificate) bool {
	if cert == nil {
		return false
	}
	if c.MchCertSerial != "" && strings.EqualFold(fmt.Sprintf("%X", cert.SerialNumber), c.MchCertSerial) {
		return true
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	return ok && c.MchPrivateKey != nil && pub.Equal(&c.MchPrivateKey.PublicKey)
}

func (c Config) validateBaseURLs() []error {
	var errs []error
	for _, b := range []struct{ name, raw string }{{"WECHATPAY_BASE_URL", c.BaseURL}, {"WECHATPAY_BACKUP_BASE_URL", c.BackupBaseURL}} {
		if b.raw == "" && b.name != "WECHATPAY_BASE_URL" {
			continue
		}
		u, err := ParseBaseURL(b.raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", b.name, err))
			continue
		}
		if u.Scheme == "http" && !c.AllowHTTP && !IsLoopbackHost(u.Hostname()) {
			errs = append(errs, fmt.Errorf("%s: http:// is allowed only to a loopback host (set WECHATPAY_ALLOW_HTTP=1 for a sandbox on a private network), got host %q", b.name, u.Hostname()))
		}
	}
	return errs
}

// IsLoopbackHost reports whether host (a name or an address, without a
// port) is this machine: localhost or a loopback address.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// ParseBaseURL checks a base URL: https or http, scheme and host only,
// because the signature covers the request path and a path prefix would
// break it. Empty means DefaultBaseURL. Errors do not name the variable.
func ParseBaseURL(raw string) (*url.URL, error) {
	if raw == "" {
		raw = DefaultBaseURL
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, errors.New("not a URL")
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("scheme must be https or http, got %q", u.Scheme)
	case u.Host == "":
		return nil, errors.New("has no host")
	case u.User != nil:
		return nil, errors.New("must not carry a user or password")
	case strings.Trim(u.Path, "/") != "" || u.RawQuery != "":
		return nil, errors.New("must be scheme and host only, without a path or query")
	}
	u.Path = ""
	return u, nil
}

// Client imports member cards through WeChat Pay API v3.
type Client struct {
	core      *core.Client
	validator auth.Validator
	baseURL   string
	backupURL string
	appID     string
	mode      Mode
	// certs is set in auto-download mode: the downloaded platform
	// certificates, fetched again when an answer names an unknown serial.
	certs *autoCertificates
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
	hc := noRedirects(cfg.HTTPClient)
	log := zerolog.Nop()
	if cfg.Logger != nil {
		log = *cfg.Logger
	}
	signer := &signers.SHA256WithRSASigner{
		MchID:               cfg.MchID,
		CertificateSerialNo: cfg.MchCertSerial,
		PrivateKey:          cfg.MchPrivateKey,
	}
	c := &Client{baseURL: base.String(), backupURL: backupURL(cfg, base), appID: cfg.AppID, mode: mode}
	var verifier auth.Verifier
	switch mode {
	case ModePublicKey:
		verifier = verifiers.NewSHA256WithRSAPubkeyVerifier(cfg.PublicKeyID, *cfg.PublicKey)
	case ModePlatformCertificate:
		verifier = verifiers.NewSHA256WithRSAVerifier(core.NewCertificateMapWithList(cfg.PlatformCertificates))
	case ModeMixed:
		// While a merchant switches to the public key, WeChat may sign with
		// either; the combined verifier asks for the public key first.
		verifier = verifiers.NewSHA256WithRSACombinedVerifier(
			core.NewCertificateMapWithList(cfg.PlatformCertificates), cfg.PublicKeyID, *cfg.PublicKey)
	case ModeAutoCertificate:
		certs, err := newAutoCertificates(ctx, signer, cfg, base, hc, log)
		if err != nil {
			return nil, err
		}
		c.certs = certs
		verifier = verifiers.NewSHA256WithRSAVerifier(certs)
	}
	// One validator checks every answer that decides something: the SDK
	// runs it on 2xx answers, Client.verify on refusals.
	c.validator = validators.NewWechatPayResponseValidator(verifier)
	cc, err := core.NewClientWithDialSettings(ctx, &core.DialSettings{Signer: signer, Validator: c.validator, HTTPClient: hc})
	if err != nil {
		return nil, fmt.Errorf("wechat pay client: %w", err)
	}
	c.core = cc
	return c, nil
}

// noRedirects returns a copy of hc (or of the default client) that never
// follows a redirect. WeChat never redirects an API call; following one
// would carry the signed request, the openid and the Authorization header
// to whatever host the Location names. The 3xx itself comes back, and is
// an unknown outcome (classify).
func noRedirects(hc *http.Client) *http.Client {
	if hc == nil {
		hc = defaultHTTPClient()
	}
	cp := *hc
	cp.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cp
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

// Close releases the client. Nothing runs in the background (certificates
// are downloaded again on demand, see autoCertificates), so it only exists
// for callers to defer whatever the mode.
func (c *Client) Close() {}

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

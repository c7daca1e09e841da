package wechatpay

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/signers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/validators"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/downloader"
)

// CertificateRefreshInterval is the least time between two downloads of the
// platform certificates that answers with an unknown serial trigger, per
// process. WeChat rotates its certificate rarely; a fleet meeting the new
// serial at once downloads once a minute per worker, not once per answer.
const CertificateRefreshInterval = time.Minute

// autoCertificates holds the platform certificates of auto-download mode. It
// is the core.CertificateGetter the client verifies answers with, and it
// downloads the certificates again, at most once per
// CertificateRefreshInterval, when an answer is signed with a serial it
// does not know: that is what a rotation of WeChat's certificate looks like
// from here, and without a download every answer would fail to verify and
// every member would burn its retries.
type autoCertificates struct {
	log   zerolog.Logger
	every time.Duration

	mu   sync.RWMutex
	dl   core.CertificateGetter // the bootstrap set, then the verified downloader
	last time.Time

	refresh sync.Mutex // one download at a time
	ref     *downloader.CertificateDownloader
}

// newAutoCertificates downloads the platform certificates from base. It
// uses a downloader of our own rather than wechatpay-go's process-wide
// singleton, which always calls the production host: ours sends
// /v3/certificates through a transport that rewrites that host to base, so
// WECHATPAY_BASE_URL works in this mode too.
//
// Nothing can verify the very first download's signature, since the
// certificates are what it fetches; what vouches for them is their AES-GCM
// encryption under the merchant's APIv3 key. That bootstrap set only
// verifies the second download, the one kept; every later download is
// verified with the certificates of the one before, so every certificate the
// client trusts came in a signed, verified answer.
func newAutoCertificates(ctx context.Context, signer *signers.SHA256WithRSASigner, cfg Config, base *url.URL, hc *http.Client, log zerolog.Logger) (*autoCertificates, error) {
	rewritten := *hc
	rewritten.Transport = &hostRewriter{to: base, next: transportOf(hc)}
	newClient := func(v *validators.WechatPayResponseValidator) (*core.Client, error) {
		return core.NewClientWithDialSettings(ctx, &core.DialSettings{Signer: signer, Validator: v, HTTPClient: &rewritten})
	}
	bootClient, err := core.NewClientWithDialSettings(ctx, &core.DialSettings{Signer: signer, Validator: &validators.NullValidator{}, HTTPClient: &rewritten})
	if err != nil {
		return nil, fmt.Errorf("certificate downloader: %w", err)
	}
	boot, err := downloader.NewCertificateDownloaderWithClient(ctx, bootClient, cfg.APIv3Key)
	if err != nil {
		return nil, fmt.Errorf("WECHATPAY_APIV3_KEY_FILE: download platform certificates: %s", describe(err))
	}
	a := &autoCertificates{log: log, every: CertificateRefreshInterval, dl: boot}
	// The kept downloader verifies its downloads with a, which holds the
	// bootstrap set until the first verified download replaces it.
	verified, err := newClient(validators.NewWechatPayResponseValidator(verifiers.NewSHA256WithRSAVerifier(a)))
	if err != nil {
		return nil, fmt.Errorf("certificate downloader: %w", err)
	}
	dl, err := downloader.NewCertificateDownloaderWithClient(ctx, verified, cfg.APIv3Key)
	if err != nil {
		return nil, fmt.Errorf("WECHATPAY_APIV3_KEY_FILE: download platform certificates: %s", describe(err))
	}
	a.mu.Lock()
	// last stays zero: the download at start is not a refresh, and a
	// rotation right after start is learnt at once.
	a.dl, a.ref = dl, dl
	a.mu.Unlock()
	return a, nil
}

func (a *autoCertificates) getter() core.CertificateGetter {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.dl
}

// Get implements core.CertificateGetter.
func (a *autoCertificates) Get(ctx context.Context, serial string) (*x509.Certificate, bool) {
	return a.getter().Get(ctx, serial)
}

// GetAll implements core.CertificateGetter.
func (a *autoCertificates) GetAll(ctx context.Context) map[string]*x509.Certificate {
	return a.getter().GetAll(ctx)
}

// GetNewestSerial implements core.CertificateGetter. wechatpay-go sends it
// as Wechatpay-Serial, asking WeChat to sign with that certificate.
func (a *autoCertificates) GetNewestSerial(ctx context.Context) string {
	return a.getter().GetNewestSerial(ctx)
}

// learn makes sure serial is known, downloading the certificates again if
// it is not and the last download is at least a refresh interval old. It
// reports whether serial is known afterwards. Concurrent callers wait for
// one download and then look again.
func (a *autoCertificates) learn(ctx context.Context, serial string) bool {
	if serial == "" {
		return false
	}
	if _, ok := a.Get(ctx, serial); ok {
		return true
	}
	a.refresh.Lock()
	defer a.refresh.Unlock()
	if _, ok := a.Get(ctx, serial); ok {
		return true
	}
	a.mu.RLock()
	since := time.Since(a.last)
	a.mu.RUnlock()
	if since < a.every {
		return false
	}
	a.mu.Lock()
	a.last = time.Now()
	a.mu.Unlock()
	if err := a.ref.DownloadCertificates(ctx); err != nil {
		a.log.Error().Str("serial", serial).Str("cause", describe(err)).
			Msg("platform certificate download failed; answers signed with this serial stay unverified")
		return false
	}
	_, ok := a.Get(ctx, serial)
	a.log.Info().Str("serial", serial).Bool("known", ok).Msg("platform certificates downloaded")
	return ok
}

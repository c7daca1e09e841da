package wechatpaytest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// certificateAAD is the associated data WeChat encrypts certificates with.
const certificateAAD = "certificate"

// chinaTime is the zone WeChat writes its times in (+08:00).
var chinaTime = time.FixedZone("CST", 8*60*60)

// certificatesResponse is the body of GET /v3/certificates.
type certificatesResponse struct {
	Data []downloadedCertificate `json:"data"`
}

type downloadedCertificate struct {
	SerialNo           string               `json:"serial_no"`
	EffectiveTime      string               `json:"effective_time"`
	ExpireTime         string               `json:"expire_time"`
	EncryptCertificate encryptedCertificate `json:"encrypt_certificate"`
}

type encryptedCertificate struct {
	Algorithm      string `json:"algorithm"`
	Nonce          string `json:"nonce"`
	AssociatedData string `json:"associated_data"`
	Ciphertext     string `json:"ciphertext"`
}

// handleCertificates serves WeChat's platform certificates the way
// wechatpay-go's auto mode downloads them: each PEM sealed with AES-256-GCM
// under the merchant's APIv3 key, so that only the merchant can read it,
// and the answer signed with a platform key (signingKey). After a rotation
// both the old and the new certificate are listed, as WeChat lists every
// certificate still valid.
func (e *Emulator) handleCertificates(w http.ResponseWriter, r *http.Request) {
	if _, ok := e.admit(w, r); !ok {
		return
	}
	body, err := e.certificatesBody()
	if err != nil {
		a := refusal(http.StatusInternalServerError, "SYSTEM_ERROR", "系统错误 ("+err.Error()+")")
		a.certificates = true
		e.reply(w, r, a)
		return
	}
	e.mu.Lock()
	e.stats.CertificateDownloads++
	e.downloads = append(e.downloads, e.clock())
	e.mu.Unlock()
	e.reply(w, r, answer{status: http.StatusOK, body: body, certificates: true})
}

func (e *Emulator) certificatesBody() ([]byte, error) {
	block, err := aes.NewCipher([]byte(e.keys.APIv3Key))
	if err != nil {
		return nil, fmt.Errorf("apiv3 key: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	e.mu.Lock()
	platforms := slices.Clone(e.platforms)
	e.mu.Unlock()
	var out certificatesResponse
	for _, p := range platforms {
		// The nonce travels as a 12-character string whose bytes are the
		// GCM nonce, as utils.DecryptAES256GCM reads it; each certificate
		// has its own.
		nonce := randomString(alphanumerics, gcm.NonceSize())
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.cert.Raw})
		sealed := gcm.Seal(nil, []byte(nonce), certPEM, []byte(certificateAAD))
		out.Data = append(out.Data, downloadedCertificate{
			SerialNo:      p.serial,
			EffectiveTime: p.cert.NotBefore.In(chinaTime).Format(time.RFC3339),
			ExpireTime:    p.cert.NotAfter.In(chinaTime).Format(time.RFC3339),
			EncryptCertificate: encryptedCertificate{
				Algorithm:      "AEAD_AES_256_GCM",
				Nonce:          nonce,
				AssociatedData: certificateAAD,
				Ciphertext:     base64.StdEncoding.EncodeToString(sealed),
			},
		})
	}
	body, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode certificates: %w", err)
	}
	return body, nil
}

// RotatePlatformCertificate makes a new platform certificate and key, as
// WeChat does when a certificate nears its expiry, and returns the new
// certificate. From then on API answers to a client that asks for any
// platform serial are signed with the new key: a client that holds only
// the old certificate fails to verify them until it downloads the new one
// from GET /v3/certificates, which lists both. Clients in public-key mode
// (PUB_KEY_ID_… serial) are not affected. Keys keeps the first
// certificate: it is what a merchant configured before the rotation.
//
// The new certificate's NotBefore is later than every earlier one's, since
// wechatpay-go takes the certificate with the latest NotBefore as the one
// to ask for.
func (e *Emulator) RotatePlatformCertificate() (*x509.Certificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate platform key: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	notBefore := e.clock().Add(-time.Hour).Truncate(time.Second)
	if last := e.platforms[len(e.platforms)-1].cert.NotBefore; !notBefore.After(last) {
		notBefore = last.Add(time.Second)
	}
	cert, err := selfSigned(key, pkix.Name{CommonName: "Tenpay.com sign", Organization: []string{"WeChat Pay emulator"}}, notBefore)
	if err != nil {
		return nil, fmt.Errorf("platform certificate: %w", err)
	}
	e.platforms = append(e.platforms, platformKey{serial: certSerial(cert), cert: cert, key: key})
	e.stats.PlatformRotations++
	return cert, nil
}

// PlatformCertificates returns WeChat's platform certificates, oldest
// first; the last signs API answers. It is Keys.PlatformCert alone until
// RotatePlatformCertificate is called.
func (e *Emulator) PlatformCertificates() []*x509.Certificate {
	e.mu.Lock()
	defer e.mu.Unlock()
	certs := make([]*x509.Certificate, len(e.platforms))
	for i, p := range e.platforms {
		certs[i] = p.cert
	}
	return certs
}

// CertificateDownloads returns when GET /v3/certificates was answered with
// the certificates, by the emulator's clock, oldest first, so that a test
// can check how often a client downloads them (wechatpay-go's auto mode
// downloads at start and then every few hours; a worker meeting an unknown
// serial downloads again).
func (e *Emulator) CertificateDownloads() []time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.downloads)
}

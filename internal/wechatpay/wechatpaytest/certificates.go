package wechatpaytest

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
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

// handleCertificates serves the platform certificate the way wechatpay-go's
// auto mode downloads it: the PEM sealed with AES-256-GCM under the
// merchant's APIv3 key, so that only the merchant can read it, and the
// answer signed with the platform key itself.
func (e *Emulator) handleCertificates(w http.ResponseWriter, r *http.Request) {
	if _, ok := e.admit(w, r); !ok {
		return
	}
	body, err := e.certificatesBody()
	if err != nil {
		e.reply(w, r, "", refusal(http.StatusInternalServerError, "SYSTEM_ERROR", "系统错误 ("+err.Error()+")"))
		return
	}
	e.reply(w, r, e.keys.PlatformSerial, answer{status: http.StatusOK, body: body})
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
	// The nonce travels as a 12-character string whose bytes are the GCM
	// nonce, as utils.DecryptAES256GCM reads it.
	nonce := randomString(alphanumerics, gcm.NonceSize())
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.keys.PlatformCert.Raw})
	sealed := gcm.Seal(nil, []byte(nonce), certPEM, []byte(certificateAAD))
	cert := e.keys.PlatformCert
	body, err := json.Marshal(certificatesResponse{Data: []downloadedCertificate{{
		SerialNo:      e.keys.PlatformSerial,
		EffectiveTime: cert.NotBefore.In(chinaTime).Format(time.RFC3339),
		ExpireTime:    cert.NotAfter.In(chinaTime).Format(time.RFC3339),
		EncryptCertificate: encryptedCertificate{
			Algorithm:      "AEAD_AES_256_GCM",
			Nonce:          nonce,
			AssociatedData: certificateAAD,
			Ciphertext:     base64.StdEncoding.EncodeToString(sealed),
		},
	}}})
	if err != nil {
		return nil, fmt.Errorf("encode certificates: %w", err)
	}
	return body, nil
}

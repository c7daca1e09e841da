package wechatpaytest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Keys is every key and identity a merchant and WeChat hold. The merchant
// signs requests with MchPrivateKey and names MchCertSerial; WeChat signs
// answers with PublicKeyPrivate (named PublicKeyID) or PlatformPrivateKey
// (named PlatformSerial). None of them are real keys.
type Keys struct {
	// MchID is the merchant id, e.g. "1900000001".
	MchID string
	// MchCertSerial is the uppercase hex serial of MchCert, as wechatpay-go
	// writes it in the Authorization header.
	MchCertSerial string
	// MchPrivateKey is the merchant API private key that signs requests.
	MchPrivateKey *rsa.PrivateKey
	// MchCert is the merchant API certificate, self-signed here (WeChat's are
	// issued by Tenpay's CA; nothing in the signature scheme depends on it).
	MchCert *x509.Certificate
	// PublicKeyID names the WeChat Pay public key: "PUB_KEY_ID_" and digits.
	PublicKeyID string
	// PublicKeyPrivate is WeChat's private half of the WeChat Pay public key;
	// it signs answers in public-key mode.
	PublicKeyPrivate *rsa.PrivateKey
	// PlatformCert is WeChat's platform certificate, served by
	// GET /v3/certificates.
	PlatformCert *x509.Certificate
	// PlatformSerial is the uppercase hex serial of PlatformCert.
	PlatformSerial string
	// PlatformPrivateKey signs answers in platform-certificate mode.
	PlatformPrivateKey *rsa.PrivateKey
	// APIv3Key is the merchant's 32-character APIv3 key, which encrypts the
	// certificates served by GET /v3/certificates.
	APIv3Key string
}

// DefaultMchID is the merchant id of generated keys; it is the one WeChat's
// own documentation uses in examples.
const DefaultMchID = "1900000001"

// certificateLifetime is how long generated certificates are valid. WeChat's
// platform certificates last five years too.
const certificateLifetime = 5 * 365 * 24 * time.Hour

// GenerateKeys returns fresh RSA-2048 keys and self-signed certificates,
// valid from an hour ago (so a slightly slow clock accepts them) for five
// years.
func GenerateKeys() (*Keys, error) {
	mchKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate merchant key: %w", err)
	}
	publicKeyPrivate, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate wechat pay public key: %w", err)
	}
	platformKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate platform key: %w", err)
	}
	notBefore := time.Now().Add(-time.Hour).Truncate(time.Second)
	mchCert, err := selfSigned(mchKey, pkix.Name{CommonName: DefaultMchID, Organization: []string{"WeChat Pay emulator merchant"}}, notBefore)
	if err != nil {
		return nil, fmt.Errorf("merchant certificate: %w", err)
	}
	platformCert, err := selfSigned(platformKey, pkix.Name{CommonName: "Tenpay.com sign", Organization: []string{"WeChat Pay emulator"}}, notBefore)
	if err != nil {
		return nil, fmt.Errorf("platform certificate: %w", err)
	}
	return &Keys{
		MchID:              DefaultMchID,
		MchCertSerial:      certSerial(mchCert),
		MchPrivateKey:      mchKey,
		MchCert:            mchCert,
		PublicKeyID:        "PUB_KEY_ID_01" + DefaultMchID + randomString(digits, 12),
		PublicKeyPrivate:   publicKeyPrivate,
		PlatformCert:       platformCert,
		PlatformSerial:     certSerial(platformCert),
		PlatformPrivateKey: platformKey,
		APIv3Key:           randomString(alphanumerics, 32),
	}, nil
}

// WechatPayPublicKey returns the WeChat Pay public key a merchant downloads
// from the merchant platform and verifies answers with.
func (k *Keys) WechatPayPublicKey() *rsa.PublicKey { return &k.PublicKeyPrivate.PublicKey }

var testKeys struct {
	once sync.Once
	keys *Keys
	err  error
}

// TestKeys returns keys generated once per process and shared by every
// test, because generating three RSA keys takes a noticeable fraction of a
// second. Each call returns its own copy of the struct, so a test may change
// a field (say, MchID) without affecting others; the keys themselves are
// shared and must not be modified.
func TestKeys(tb testing.TB) *Keys {
	tb.Helper()
	testKeys.once.Do(func() { testKeys.keys, testKeys.err = GenerateKeys() })
	if testKeys.err != nil {
		tb.Fatalf("wechatpaytest: generate keys: %v", testKeys.err)
	}
	k := *testKeys.keys
	return &k
}

// selfSigned makes a certificate for key, signed by itself.
func selfSigned(key *rsa.PrivateKey, subject pkix.Name, notBefore time.Time) (*x509.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber: newSerialNumber(),
		Subject:      subject,
		NotBefore:    notBefore,
		NotAfter:     notBefore.Add(certificateLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	return cert, nil
}

// newSerialNumber returns a positive 20-byte serial whose first byte is never
// zero, so its hex form is always 40 characters, like WeChat's.
func newSerialNumber() *big.Int {
	b := make([]byte, 20)
	_, _ = rand.Read(b) // crypto/rand.Read never fails; it crashes instead.
	b[0] = b[0]&0x7f | 0x10
	return new(big.Int).SetBytes(b)
}

// WriteKeyFile replaces the file at path with data, readable as perm says,
// the way a key file must be written where others may have been first. The
// data goes into a new file of a random name that only this call can have
// created (O_EXCL), 0600 from the start and changed to perm through its
// descriptor, so neither a file planted in the directory (a loose
// "key.pem.tmp", a symbolic link to another file) nor a link swapped in
// meanwhile is ever written through or chmodded. A rename then puts it in
// place: a reader never sees half a key, and a link at path is replaced,
// not followed.
func WriteKeyFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// certSerial formats a certificate's serial the way wechatpay-go's
// utils.GetCertificateSerialNumber does: uppercase hex of its bytes.
func certSerial(c *x509.Certificate) string { return fmt.Sprintf("%X", c.SerialNumber.Bytes()) }

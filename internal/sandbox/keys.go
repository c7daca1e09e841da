package sandbox

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"

	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

// FileWeChatSide holds WeChat's two private keys (the one behind the WeChat
// Pay public key and the platform certificate's), which only the sandbox
// needs: they sign its answers. A real merchant never holds them, so they
// are kept apart from the files WriteDir hands the merchant, and 0600.
const FileWeChatSide = "sandbox_wechatpay_private.pem"

// PEM block types and the header of FileWeChatSide.
const (
	blockPublicKeyPrivate = "WECHATPAY PUBLIC KEY PRIVATE KEY"
	blockPlatformPrivate  = "WECHATPAY PLATFORM PRIVATE KEY"
	headerPublicKeyID     = "Public-Key-Id"
)

// Identity is what a worker's configuration names of the sandbox's keys.
// Fixing it with flags lets a docker-compose file write the worker's
// WECHATPAY_MCHID, WECHATPAY_MCH_CERT_SERIAL and WECHATPAY_PUBLIC_KEY_ID
// before the sandbox has run. Empty fields take generated values.
type Identity struct {
	MchID         string
	MchCertSerial string
	PublicKeyID   string
}

// check reports the first field that is not of WeChat's form.
func (id Identity) check() error {
	if id.MchID != "" && strings.Trim(id.MchID, "0123456789") != "" {
		return fmt.Errorf("--mchid: %q is not a merchant number (digits)", id.MchID)
	}
	if id.MchCertSerial != "" {
		if _, ok := new(big.Int).SetString(id.MchCertSerial, 16); !ok || strings.ToUpper(id.MchCertSerial) != id.MchCertSerial || id.MchCertSerial[0] == '0' {
			return fmt.Errorf("--mch-cert-serial: %q is not an uppercase hex serial without leading zeros", id.MchCertSerial)
		}
	}
	if id.PublicKeyID != "" && !strings.HasPrefix(id.PublicKeyID, "PUB_KEY_ID_") {
		return fmt.Errorf("--public-key-id: %q must start with PUB_KEY_ID_", id.PublicKeyID)
	}
	return nil
}

// matches reports the first field of id that k contradicts.
func (id Identity) matches(k *wechatpaytest.Keys) error {
	switch {
	case id.MchID != "" && id.MchID != k.MchID:
		return fmt.Errorf("--mchid %s, but the stored keys are merchant %s", id.MchID, k.MchID)
	case id.MchCertSerial != "" && id.MchCertSerial != k.MchCertSerial:
		return fmt.Errorf("--mch-cert-serial %s, but the stored merchant certificate is %s", id.MchCertSerial, k.MchCertSerial)
	case id.PublicKeyID != "" && id.PublicKeyID != k.PublicKeyID:
		return fmt.Errorf("--public-key-id %s, but the stored public key is %s", id.PublicKeyID, k.PublicKeyID)
	}
	return nil
}

// loadOrGenerate returns the keys stored in dir by an earlier run, so that a
// worker configured from the env file keeps working across sandbox
// restarts, or new keys of the given identity when dir holds none. Stored
// keys that contradict id are an error rather than silently replaced: a
// worker somewhere may still trust them.
func loadOrGenerate(dir string, id Identity) (keys *wechatpaytest.Keys, generated bool, err error) {
	if err := id.check(); err != nil {
		return nil, false, err
	}
	keys, err = loadKeys(dir)
	switch {
	case err == nil:
		if err := id.matches(keys); err != nil {
			return nil, false, fmt.Errorf("%w; remove %s to make new keys", err, dir)
		}
		return keys, false, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, false, err
	}
	keys, err = generate(id)
	if err != nil {
		return nil, false, err
	}
	return keys, true, nil
}

// generate makes fresh keys, then gives them the requested identity. The
// merchant certificate is re-issued when its number or serial is fixed, so
// that the certificate file and the env file agree.
func generate(id Identity) (*wechatpaytest.Keys, error) {
	k, err := wechatpaytest.GenerateKeys()
	if err != nil {
		return nil, err
	}
	if id.MchID != "" {
		k.MchID = id.MchID
	}
	if id.PublicKeyID != "" {
		k.PublicKeyID = id.PublicKeyID
	}
	if id.MchID != "" || id.MchCertSerial != "" {
		// The certificate names the merchant in its common name, which is
		// where loadKeys finds the merchant number again.
		tmpl := *k.MchCert
		tmpl.Subject.CommonName = k.MchID
		tmpl.RawSubject, tmpl.RawIssuer = nil, nil // else they win over Subject
		if id.MchCertSerial != "" {
			tmpl.SerialNumber, _ = new(big.Int).SetString(id.MchCertSerial, 16) // checked by Identity.check
		}
		der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &k.MchPrivateKey.PublicKey, k.MchPrivateKey)
		if err != nil {
			return nil, fmt.Errorf("merchant certificate: %w", err)
		}
		if k.MchCert, err = x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("merchant certificate: %w", err)
		}
		k.MchCertSerial = fmt.Sprintf("%X", k.MchCert.SerialNumber.Bytes())
	}
	return k, nil
}

// saveWeChatSide writes what WriteDir leaves out: WeChat's private keys and
// the public key's id.
func saveWeChatSide(dir string, k *wechatpaytest.Keys) error {
	var b []byte
	for _, blk := range []struct {
		typ     string
		key     *rsa.PrivateKey
		headers map[string]string
	}{
		{blockPublicKeyPrivate, k.PublicKeyPrivate, map[string]string{headerPublicKeyID: k.PublicKeyID}},
		{blockPlatformPrivate, k.PlatformPrivateKey, nil},
	} {
		der, err := x509.MarshalPKCS8PrivateKey(blk.key)
		if err != nil {
			return fmt.Errorf("save keys: %w", err)
		}
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: blk.typ, Headers: blk.headers, Bytes: der})...)
	}
	// Not os.WriteFile of a fixed "….tmp" name: a file planted there
	// beforehand keeps its own permissions (0666, say), and a symbolic link
	// there is written through.
	if err := wechatpaytest.WriteKeyFile(filepath.Join(dir, FileWeChatSide), b, 0o600); err != nil {
		return fmt.Errorf("save keys: %w", err)
	}
	return nil
}

// loadKeys reads the keys an earlier run wrote into dir. It returns an
// error wrapping os.ErrNotExist when dir holds no keys at all.
func loadKeys(dir string) (*wechatpaytest.Keys, error) {
	side, err := os.ReadFile(filepath.Join(dir, FileWeChatSide))
	if err != nil {
		return nil, err
	}
	k := &wechatpaytest.Keys{}
	for {
		var blk *pem.Block
		if blk, side = pem.Decode(side); blk == nil {
			break
		}
		key, err := parseRSA(FileWeChatSide, blk.Bytes)
		if err != nil {
			return nil, err
		}
		switch blk.Type {
		case blockPublicKeyPrivate:
			k.PublicKeyPrivate, k.PublicKeyID = key, blk.Headers[headerPublicKeyID]
		case blockPlatformPrivate:
			k.PlatformPrivateKey = key
		}
	}
	if k.PublicKeyPrivate == nil || k.PlatformPrivateKey == nil || k.PublicKeyID == "" {
		return nil, fmt.Errorf("load keys: %s: lacks a private key or the public key id", filepath.Join(dir, FileWeChatSide))
	}
	read := func(name string) ([]byte, error) {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			// A half-written directory is not "no keys": say what is missing.
			return nil, fmt.Errorf("load keys: %s", strings.ReplaceAll(err.Error(), os.ErrNotExist.Error(), "missing"))
		}
		return data, nil
	}
	mchKey, err := read(wechatpaytest.FileMchPrivateKey)
	if err != nil {
		return nil, err
	}
	if k.MchPrivateKey, err = parseRSA(wechatpaytest.FileMchPrivateKey, pemBytes(mchKey)); err != nil {
		return nil, err
	}
	if k.MchCert, err = readCert(read, wechatpaytest.FileMchCert); err != nil {
		return nil, err
	}
	if k.PlatformCert, err = readCert(read, wechatpaytest.FilePlatformCert); err != nil {
		return nil, err
	}
	apiv3, err := read(wechatpaytest.FileAPIv3Key)
	if err != nil {
		return nil, err
	}
	k.APIv3Key = strings.TrimSpace(string(apiv3))
	if len(k.APIv3Key) != 32 {
		return nil, fmt.Errorf("load keys: %s: the APIv3 key must be 32 characters", wechatpaytest.FileAPIv3Key)
	}
	k.MchID = k.MchCert.Subject.CommonName
	k.MchCertSerial = fmt.Sprintf("%X", k.MchCert.SerialNumber.Bytes())
	k.PlatformSerial = fmt.Sprintf("%X", k.PlatformCert.SerialNumber.Bytes())
	return k, nil
}

// pemBytes returns the DER of the first PEM block, or nil.
func pemBytes(data []byte) []byte {
	blk, _ := pem.Decode(data)
	if blk == nil {
		return nil
	}
	return blk.Bytes
}

func parseRSA(name string, der []byte) (*rsa.PrivateKey, error) {
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("load keys: %s: %v", name, err)
	}
	rsaKey, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("load keys: %s: not an RSA key", name)
	}
	return rsaKey, nil
}

func readCert(read func(string) ([]byte, error), name string) (*x509.Certificate, error) {
	data, err := read(name)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(pemBytes(data))
	if err != nil {
		return nil, fmt.Errorf("load keys: %s: %v", name, err)
	}
	return c, nil
}

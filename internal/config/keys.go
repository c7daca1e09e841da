package config

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cardimport/cardimport/internal/wechatpay"
)

// WeChatPay reads the merchant's identity and keys from the environment
// variables of docs/contracts.md into a wechatpay.Config. Every problem is
// reported, each naming its variable, so an operator fixes them in one go. Key
// material never appears in an error, even when a *_FILE variable holds
// the key itself instead of its path. warnings name secret files that
// users other than the owner may read, as ssh warns of a loose key.
func WeChatPay(env func(string) string) (cfg wechatpay.Config, warnings []string, err error) {
	cfg = wechatpay.Config{
		BaseURL:       env("WECHATPAY_BASE_URL"),
		MchID:         strings.TrimSpace(env("WECHATPAY_MCHID")),
		MchCertSerial: strings.TrimSpace(env("WECHATPAY_MCH_CERT_SERIAL")),
		PublicKeyID:   strings.TrimSpace(env("WECHATPAY_PUBLIC_KEY_ID")),
		AppID:         strings.TrimSpace(env("WECHATPAY_APPID")),
	}
	f := keyFiles{env: env}
	if cfg.MchCertSerial != "" && strings.Trim(strings.ToUpper(cfg.MchCertSerial), "0123456789ABCDEF") != "" {
		f.errs = append(f.errs, errors.New("WECHATPAY_MCH_CERT_SERIAL: must be the certificate serial in hex"))
	}
	fromFile(&f, "WECHATPAY_MCH_PRIVATE_KEY_FILE", secret, &cfg.MchPrivateKey, privateKeyFile)
	fromFile(&f, "WECHATPAY_PUBLIC_KEY_FILE", !secret, &cfg.PublicKey, publicKeyFile)
	fromFile(&f, "WECHATPAY_PLATFORM_CERT_FILE", !secret, &cfg.PlatformCertificates, certificateFile)
	fromFile(&f, "WECHATPAY_APIV3_KEY_FILE", secret, &cfg.APIv3Key, apiV3KeyFile)
	return cfg, f.warnings, errors.Join(f.errs...)
}

// keyFiles gathers the problems and warnings of reading the files the
// variables of env name.
type keyFiles struct {
	env      func(string) string
	errs     []error
	warnings []string
}

// secret marks a file of the merchant's secrets (its private key, the
// APIv3 key), whose permissions are checked (appendLoose).
const secret = true

// fromFile sets *dst from the file the variable name names, when it is set,
// read with read. A problem goes to f's errors; a secret file read well
// that others may read, to its warnings.
func fromFile[T any](f *keyFiles, name string, isSecret bool, dst *T, read func(name, path string) (T, error)) {
	path := f.env(name)
	if path == "" {
		return
	}
	v, err := read(name, path)
	if err != nil {
		f.errs = append(f.errs, err)
		return
	}
	*dst = v
	if isSecret {
		f.warnings = appendLoose(f.warnings, name, path)
	}
}

// appendLoose adds a warning when the secret file at path (a merchant
// private key, an APIv3 key) may be read by its group or by others. The
// worker starts all the same: a container's secret mount may be 0444 by
// design, but on a shared host anyone who reads the key can sign as the
// merchant. The path is the operator's own and is shown.
func appendLoose(warnings []string, name, path string) []string {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return warnings
	}
	return append(warnings, fmt.Sprintf("%s: %s is readable by group or others (permissions %04o); anyone who reads it can sign as the merchant: chmod 600 it", name, path, fi.Mode().Perm()))
}

// looksLikeKey says whether the value of a *_FILE variable is rather the
// key itself: PEM text, or a line without a path's slash or dot (an APIv3
// key is 32 letters and digits). Errors then do not repeat it.
func looksLikeKey(v string) bool {
	return strings.Contains(v, "-----") || strings.ContainsAny(v, "\r\n") || !strings.ContainsAny(v, "/.")
}

func readFile(name, path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		return data, nil
	case looksLikeKey(path):
		// os's errors repeat the path, which here may be the key.
		return nil, fmt.Errorf("%s: names no file it can read (the value is not shown: it may be the key itself); set it to the path of the file holding the key", name)
	}
	return nil, fmt.Errorf("%s: %w", name, err)
}

// readPEM reads every PEM block of the file named by variable name.
func readPEM(name, path string) ([]*pem.Block, error) {
	data, err := readFile(name, path)
	if err != nil {
		return nil, err
	}
	var blocks []*pem.Block
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		blocks = append(blocks, b)
	}
	if len(blocks) == 0 {
		return nil, fmt.Errorf("%s: %s: no PEM block found", name, path)
	}
	return blocks, nil
}

// privateKeyFile reads the merchant's RSA private key, PKCS#8 or PKCS#1.
func privateKeyFile(name, path string) (*rsa.PrivateKey, error) {
	return rsaKeyFile[*rsa.PrivateKey](name, path, "private key", map[string]func([]byte) (any, error){
		"PRIVATE KEY":     x509.ParsePKCS8PrivateKey,
		"RSA PRIVATE KEY": func(der []byte) (any, error) { return x509.ParsePKCS1PrivateKey(der) },
	})
}

// publicKeyFile reads WeChat Pay's RSA public key, PKIX.
func publicKeyFile(name, path string) (*rsa.PublicKey, error) {
	return rsaKeyFile[*rsa.PublicKey](name, path, "public key", map[string]func([]byte) (any, error){
		"PUBLIC KEY": x509.ParsePKIXPublicKey,
	})
}

// rsaKeyFile reads the RSA key K in the first PEM block of the file, which
// parse, by the block's type, reads. kind names the key in errors, and in
// upper case the block it wants.
func rsaKeyFile[K *rsa.PrivateKey | *rsa.PublicKey](name, path, kind string, parse map[string]func([]byte) (any, error)) (K, error) {
	blocks, err := readPEM(name, path)
	if err != nil {
		return nil, err
	}
	read, ok := parse[blocks[0].Type]
	if !ok {
		return nil, fmt.Errorf("%s: %s: PEM block is %q, want %s", name, path, blocks[0].Type, strings.ToUpper(kind))
	}
	key, err := read(blocks[0].Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: bad %s: %v", name, path, kind, err)
	}
	rsaKey, ok := key.(K)
	if !ok {
		return nil, fmt.Errorf("%s: %s: not an RSA key", name, path)
	}
	return rsaKey, nil
}

// certificateFile reads every certificate in the file: during a rotation
// WeChat signs with the old or the new one.
func certificateFile(name, path string) ([]*x509.Certificate, error) {
	blocks, err := readPEM(name, path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for i, b := range blocks {
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: %s: PEM block %d is %q, want CERTIFICATE", name, path, i+1, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: bad certificate %d: %v", name, path, i+1, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

func apiV3KeyFile(name, path string) (string, error) {
	data, err := readFile(name, path)
	if err != nil {
		return "", err
	}
	key := strings.TrimSpace(string(data))
	if len(key) != 32 {
		return "", fmt.Errorf("%s: %s: the APIv3 key must be 32 characters, the file holds %d", name, path, len(key))
	}
	return key, nil
}

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
	var errs []error
	collect := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.MchCertSerial != "" && strings.Trim(strings.ToUpper(cfg.MchCertSerial), "0123456789ABCDEF") != "" {
		collect(errors.New("WECHATPAY_MCH_CERT_SERIAL: must be the certificate serial in hex"))
	}
	if v := env("WECHATPAY_MCH_PRIVATE_KEY_FILE"); v != "" {
		var err error
		cfg.MchPrivateKey, err = privateKeyFile("WECHATPAY_MCH_PRIVATE_KEY_FILE", v)
		collect(err)
		if err == nil {
			warnings = appendLoose(warnings, "WECHATPAY_MCH_PRIVATE_KEY_FILE", v)
		}
	}
	if v := env("WECHATPAY_PUBLIC_KEY_FILE"); v != "" {
		var err error
		cfg.PublicKey, err = publicKeyFile("WECHATPAY_PUBLIC_KEY_FILE", v)
		collect(err)
	}
	if v := env("WECHATPAY_PLATFORM_CERT_FILE"); v != "" {
		var err error
		cfg.PlatformCertificates, err = certificateFile("WECHATPAY_PLATFORM_CERT_FILE", v)
		collect(err)
	}
	if v := env("WECHATPAY_APIV3_KEY_FILE"); v != "" {
		var err error
		cfg.APIv3Key, err = apiV3KeyFile("WECHATPAY_APIV3_KEY_FILE", v)
		collect(err)
		if err == nil {
			warnings = appendLoose(warnings, "WECHATPAY_APIV3_KEY_FILE", v)
		}
	}
	if len(errs) > 0 {
		return cfg, warnings, errors.Join(errs...)
	}
	return cfg, warnings, nil
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

func privateKeyFile(name, path string) (*rsa.PrivateKey, error) {
	blocks, err := readPEM(name, path)
	if err != nil {
		return nil, err
	}
	var key any
	switch blocks[0].Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blocks[0].Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(blocks[0].Bytes)
	default:
		return nil, fmt.Errorf("%s: %s: PEM block is %q, want PRIVATE KEY", name, path, blocks[0].Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %s: bad private key: %v", name, path, err)
	}
	rsaKey, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: %s: not an RSA key", name, path)
	}
	return rsaKey, nil
}

func publicKeyFile(name, path string) (*rsa.PublicKey, error) {
	blocks, err := readPEM(name, path)
	if err != nil {
		return nil, err
	}
	if blocks[0].Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%s: %s: PEM block is %q, want PUBLIC KEY", name, path, blocks[0].Type)
	}
	key, err := x509.ParsePKIXPublicKey(blocks[0].Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: bad public key: %v", name, path, err)
	}
	rsaKey, ok := key.(*rsa.PublicKey)
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

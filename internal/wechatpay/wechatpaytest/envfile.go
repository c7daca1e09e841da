package wechatpaytest

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Environment variables WriteDir sets, the ones the worker reads.
const (
	// EnvBaseURL is the base URL the worker calls instead of
	// https://api.mch.weixin.qq.com.
	EnvBaseURL = "WECHATPAY_BASE_URL"
	// EnvMchID is the merchant id.
	EnvMchID = "WECHATPAY_MCHID"
	// EnvMchCertSerial is the merchant API certificate's serial.
	EnvMchCertSerial = "WECHATPAY_MCH_CERT_SERIAL"
	// EnvMchPrivateKeyFile is the path of the merchant API private key.
	EnvMchPrivateKeyFile = "WECHATPAY_MCH_PRIVATE_KEY_FILE"
	// EnvPublicKeyID names the WeChat Pay public key (PUB_KEY_ID_…).
	EnvPublicKeyID = "WECHATPAY_PUBLIC_KEY_ID"
	// EnvPublicKeyFile is the path of the WeChat Pay public key.
	EnvPublicKeyFile = "WECHATPAY_PUBLIC_KEY_FILE"
	// EnvPlatformCertFile selects platform-certificate mode instead of the
	// public key; WriteDir writes it commented out.
	EnvPlatformCertFile = "WECHATPAY_PLATFORM_CERT_FILE"
	// EnvAPIv3KeyFile selects auto-downloaded certificates; WriteDir writes
	// it commented out.
	EnvAPIv3KeyFile = "WECHATPAY_APIV3_KEY_FILE"
)

// Names of the files WriteDir writes.
const (
	// FileMchPrivateKey is the merchant API private key, PKCS#8 PEM, 0600.
	FileMchPrivateKey = "apiclient_key.pem"
	// FileMchCert is the merchant API certificate, PEM.
	FileMchCert = "apiclient_cert.pem"
	// FilePublicKey is the WeChat Pay public key, PKIX PEM.
	FilePublicKey = "pub_key.pem"
	// FilePlatformCert is the WeChat platform certificate, PEM.
	FilePlatformCert = "platform_cert.pem"
	// FileAPIv3Key is the APIv3 key, 32 characters and no newline, 0600.
	FileAPIv3Key = "apiv3_key.txt"
	// FileEnv is the env file of NAME=value lines.
	FileEnv = "env"
)

// WriteDir writes the merchant's side of k into dir the way WeChat hands
// them out (PKCS#8 private key, PEM certificates, PKIX public key, the APIv3
// key as bare text with no newline) and an env file of NAME=value lines
// configuring public-key mode against baseURL, with the other modes'
// variables as comments. Private key files are 0600. It returns the
// variables the env file sets. Paths are absolute, so the env file works
// from any directory.
func (k *Keys) WriteDir(dir, baseURL string) (map[string]string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("write dir: %w", err)
	}
	if strings.ContainsAny(abs, "\r\n") || strings.ContainsAny(baseURL, "\r\n") {
		return nil, fmt.Errorf("write dir: path or base URL contains a line break")
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("write dir: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(k.MchPrivateKey)
	if err != nil {
		return nil, fmt.Errorf("write dir: merchant key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(k.WechatPayPublicKey())
	if err != nil {
		return nil, fmt.Errorf("write dir: public key: %w", err)
	}
	path := func(name string) string { return filepath.Join(abs, name) }
	files := []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{FileMchPrivateKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600},
		{FileMchCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.MchCert.Raw}), 0o644},
		{FilePublicKey, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644},
		{FilePlatformCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.PlatformCert.Raw}), 0o644},
		{FileAPIv3Key, []byte(k.APIv3Key), 0o600},
	}
	for _, f := range files {
		if err := WriteKeyFile(path(f.name), f.data, f.perm); err != nil {
			return nil, fmt.Errorf("write dir: %w", err)
		}
	}
	env := map[string]string{
		EnvBaseURL:           baseURL,
		EnvMchID:             k.MchID,
		EnvMchCertSerial:     k.MchCertSerial,
		EnvMchPrivateKeyFile: path(FileMchPrivateKey),
		EnvPublicKeyID:       k.PublicKeyID,
		EnvPublicKeyFile:     path(FilePublicKey),
	}
	var b bytes.Buffer
	b.WriteString("# WeChat Pay emulator credentials written by wechatpaytest. Not real keys.\n")
	for _, name := range []string{EnvBaseURL, EnvMchID, EnvMchCertSerial, EnvMchPrivateKeyFile, EnvPublicKeyID, EnvPublicKeyFile} {
		fmt.Fprintf(&b, "%s=%s\n", name, env[name])
	}
	b.WriteString("# Platform-certificate mode instead of the public key:\n")
	fmt.Fprintf(&b, "# %s=%s\n", EnvPlatformCertFile, path(FilePlatformCert))
	b.WriteString("# Auto-downloaded platform certificates (GET /v3/certificates) instead:\n")
	fmt.Fprintf(&b, "# %s=%s\n", EnvAPIv3KeyFile, path(FileAPIv3Key))
	if err := WriteKeyFile(path(FileEnv), b.Bytes(), 0o644); err != nil {
		return nil, fmt.Errorf("write dir: %w", err)
	}
	return env, nil
}

// ReadEnvFile reads NAME=value lines like those WriteDir writes, as
// docker's --env-file does: blank lines and lines starting with # are
// skipped, the value is everything after the first "=", unquoted. A line
// that is not NAME=value is an error naming its number.
func ReadEnvFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read env file: %w", err)
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if trimmed := strings.TrimSpace(line); trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name = strings.TrimSpace(name)
		if !ok || !isEnvName(name) {
			return nil, fmt.Errorf("read env file %s: line %d: not NAME=value", path, n)
		}
		env[name] = value
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read env file %s: %w", path, err)
	}
	return env, nil
}

// isEnvName reports whether s is a portable environment variable name.
func isEnvName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

package redisconntest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TLS is a certificate authority of the test's own and a certificate it
// signed for 127.0.0.1 and localhost, as files the servers read and a
// config the test's clients trust. A command run as a process trusts it
// with SSL_CERT_FILE=CA in its environment (Go reads it on Linux).
type TLS struct {
	// CA, Cert and Key are PEM files.
	CA, Cert, Key string
	// Config trusts CA only.
	Config *tls.Config
}

// NewTLS writes a new CA and server certificate into a directory of the
// test's.
func NewTLS(tb testing.TB) *TLS {
	tb.Helper()
	dir := tb.TempDir()
	now := time.Now()
	ca, caKey := issue(tb, &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redisconntest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}, nil, nil)
	leaf, key := issue(tb, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature,
		// A cluster node and a replica are TLS clients of each other.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, ca, caKey)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	t := &TLS{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "server.pem"), Key: filepath.Join(dir, "server-key.pem")}
	for path, block := range map[string]*pem.Block{
		t.CA:   {Type: "CERTIFICATE", Bytes: ca.Raw},
		t.Cert: {Type: "CERTIFICATE", Bytes: leaf.Raw},
		t.Key:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	t.Config = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return t
}

// issue makes a P-256 key and the certificate of tmpl for it, signed by
// parent's key parentKey, or by itself when parent is nil.
func issue(tb testing.TB, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return cert, key
}

// serverArgs are a redis-server's TLS arguments: TLS only, on port, to
// clients, replicas and the cluster bus, no client certificates asked.
func (t *TLS) serverArgs(port string) []string {
	return []string{"--port", "0", "--tls-port", port, "--tls-cert-file", t.Cert, "--tls-key-file", t.Key,
		"--tls-ca-cert-file", t.CA, "--tls-auth-clients", "no", "--tls-replication", "yes", "--tls-cluster", "yes"}
}

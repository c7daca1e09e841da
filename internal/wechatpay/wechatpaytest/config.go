package wechatpaytest

import (
	"crypto/x509"

	"github.com/cardimport/cardimport/internal/wechatpay"
)

// ClientConfig returns a wechatpay.Config that points a client at the
// server with the given key mode, as a merchant holding these keys would
// configure it.
func (s *Server) ClientConfig(mode wechatpay.Mode) wechatpay.Config {
	k := s.Keys
	cfg := wechatpay.Config{
		BaseURL:       s.URL,
		MchID:         k.MchID,
		MchCertSerial: k.MchCertSerial,
		MchPrivateKey: k.MchPrivateKey,
	}
	switch mode {
	case wechatpay.ModePublicKey:
		cfg.PublicKeyID, cfg.PublicKey = k.PublicKeyID, k.WechatPayPublicKey()
	case wechatpay.ModePlatformCertificate:
		cfg.PlatformCertificates = []*x509.Certificate{k.PlatformCert}
	case wechatpay.ModeMixed:
		cfg.PublicKeyID, cfg.PublicKey = k.PublicKeyID, k.WechatPayPublicKey()
		cfg.PlatformCertificates = []*x509.Certificate{k.PlatformCert}
	case wechatpay.ModeAutoCertificate:
		cfg.APIv3Key = k.APIv3Key
	}
	return cfg
}

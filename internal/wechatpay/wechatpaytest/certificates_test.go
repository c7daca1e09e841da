package wechatpaytest_test

import (
	"crypto/x509"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"
)

func TestCertificatesDecrypt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client := platformCertClient(t, b.srv)

	res, err := client.Get(t.Context(), b.srv.URL+"/v3/certificates")

	require.NoError(t, err, "the answer verifies with the platform certificate")
	require.Equal(t, b.keys.PlatformSerial, res.Response.Header.Get("Wechatpay-Serial"))
	var body struct {
		Data []struct {
			SerialNo           string `json:"serial_no"`
			EffectiveTime      string `json:"effective_time"`
			ExpireTime         string `json:"expire_time"`
			EncryptCertificate struct {
				Algorithm      string `json:"algorithm"`
				Nonce          string `json:"nonce"`
				AssociatedData string `json:"associated_data"`
				Ciphertext     string `json:"ciphertext"`
			} `json:"encrypt_certificate"`
		} `json:"data"`
	}
	require.NoError(t, core.UnMarshalResponse(res.Response, &body))
	require.Len(t, body.Data, 1)
	got := body.Data[0]
	require.Equal(t, b.keys.PlatformSerial, got.SerialNo)
	require.Equal(t, "AEAD_AES_256_GCM", got.EncryptCertificate.Algorithm)
	require.Equal(t, "certificate", got.EncryptCertificate.AssociatedData)
	require.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$`, got.ExpireTime)

	plain, err := utils.DecryptAES256GCM(b.keys.APIv3Key, got.EncryptCertificate.AssociatedData, got.EncryptCertificate.Nonce, got.EncryptCertificate.Ciphertext)
	require.NoError(t, err)
	cert, err := utils.LoadCertificate(plain)
	require.NoError(t, err)
	require.Equal(t, b.keys.PlatformCert.Raw, cert.Raw)
	require.Equal(t, got.SerialNo, utils.GetCertificateSerialNumber(*cert))
}

func TestCertificatesRequireASignature(t *testing.T) {
	t.Parallel()
	b := setup(t)

	resp, err := b.srv.Client().Get(b.srv.URL + "/v3/certificates")

	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 401, resp.StatusCode)
	require.Equal(t, 1, b.srv.Stats().Refusals["SIGN_ERROR"])
}

// certificateList downloads GET /v3/certificates through client and
// returns the answer's signing serial and the certificates, decrypted.
func certificateList(t *testing.T, client *core.Client, b *testBundle) (signedBy string, certs []*x509.Certificate) {
	t.Helper()
	res, err := client.Get(t.Context(), b.srv.URL+"/v3/certificates")
	require.NoError(t, err, "the list verifies")
	var body struct {
		Data []struct {
			SerialNo           string `json:"serial_no"`
			EncryptCertificate struct {
				Nonce          string `json:"nonce"`
				AssociatedData string `json:"associated_data"`
				Ciphertext     string `json:"ciphertext"`
			} `json:"encrypt_certificate"`
		} `json:"data"`
	}
	require.NoError(t, core.UnMarshalResponse(res.Response, &body))
	for _, d := range body.Data {
		plain, err := utils.DecryptAES256GCM(b.keys.APIv3Key, d.EncryptCertificate.AssociatedData, d.EncryptCertificate.Nonce, d.EncryptCertificate.Ciphertext)
		require.NoError(t, err)
		cert, err := utils.LoadCertificate(plain)
		require.NoError(t, err)
		require.Equal(t, d.SerialNo, utils.GetCertificateSerialNumber(*cert))
		certs = append(certs, cert)
	}
	return res.Response.Header.Get("Wechatpay-Serial"), certs
}

// TestRotatePlatformCertificate: after a rotation, a client holding only
// the old certificate gets answers signed with the new one, which it
// cannot verify, while the import behind them stands; /v3/certificates,
// signed with the key the client names, lists both; a client holding both
// verifies everything, refusals included; public-key mode is unaffected.
func TestRotatePlatformCertificate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	oldCert := b.keys.PlatformCert
	oldClient := platformCertClient(t, b.srv)
	_, _, err := doImport(t, oldClient, b.srv.URL, testCard, importBody{OpenID: openid + "0", OutRequestNo: "rot-0"})
	require.NoError(t, err, "before the rotation")

	newCert, err := b.srv.RotatePlatformCertificate()
	require.NoError(t, err)
	newSerial := utils.GetCertificateSerialNumber(*newCert)
	require.NotEqual(t, b.keys.PlatformSerial, newSerial)
	require.True(t, newCert.NotBefore.After(oldCert.NotBefore), "wechatpay-go asks for the certificate with the latest NotBefore")
	require.Equal(t, []*x509.Certificate{oldCert, newCert}, b.srv.PlatformCertificates())
	require.Equal(t, oldCert, b.keys.PlatformCert, "Keys keep the certificate the merchant configured")

	t.Run("old certificate only: answers carry the new serial and do not verify", func(t *testing.T) {
		body := importBody{OpenID: openid + "1", OutRequestNo: "rot-1"}
		_, res, err := doImport(t, oldClient, b.srv.URL, testCard, body)
		require.Error(t, err)
		require.Equal(t, newSerial, res.Response.Header.Get("Wechatpay-Serial"))
		require.Equal(t, b.keys.PlatformSerial, res.Request.Header.Get("Wechatpay-Serial"), "the client asked for the old one")
		require.Equal(t, 1, b.srv.ImportCount(testCard, body.OpenID), "the import stands")
	})
	t.Run("certificates list both, signed with the key asked for", func(t *testing.T) {
		signedBy, certs := certificateList(t, oldClient, b)
		require.Equal(t, b.keys.PlatformSerial, signedBy)
		require.Equal(t, []*x509.Certificate{oldCert, newCert}, certs)
	})
	t.Run("certificates asked for with the new serial are signed with it", func(t *testing.T) {
		signedBy, certs := certificateList(t, clientWithCerts(t, b.srv, oldCert, newCert), b)
		require.Equal(t, newSerial, signedBy)
		require.Len(t, certs, 2)
	})
	t.Run("certificates asked for with no platform serial are signed with the newest", func(t *testing.T) {
		res, err := b.client.Get(t.Context(), b.srv.URL+"/v3/certificates")
		require.Error(t, err, "a public-key client cannot verify a platform signature")
		require.Equal(t, b.keys.PublicKeyID, res.Request.Header.Get("Wechatpay-Serial"))
		require.Equal(t, newSerial, res.Response.Header.Get("Wechatpay-Serial"))
		require.NoError(t, platformValidator(newCert).Validate(t.Context(), res.Response))
	})
	t.Run("both certificates: answers and refusals verify", func(t *testing.T) {
		both := clientWithCerts(t, b.srv, oldCert, newCert)
		_, res, err := doImport(t, both, b.srv.URL, testCard, importBody{OpenID: openid + "1", OutRequestNo: "rot-1"})
		require.NoError(t, err, "the retry's replay verifies")
		require.Equal(t, newSerial, res.Response.Header.Get("Wechatpay-Serial"))
		_, res, err = doImport(t, both, b.srv.URL, "pUNKNOWN", importBody{OpenID: openid + "2", OutRequestNo: "rot-2"})
		require.Equal(t, "NOT_FOUND", apiError(t, err).Code)
		require.NoError(t, platformValidator(newCert).Validate(t.Context(), res.Response))
	})
	t.Run("public-key mode is unaffected", func(t *testing.T) {
		_, res, err := b.importMember(t, testCard, importBody{OpenID: openid + "3", OutRequestNo: "rot-3"})
		require.NoError(t, err)
		require.Equal(t, b.keys.PublicKeyID, res.Response.Header.Get("Wechatpay-Serial"))
	})
	require.Equal(t, 1, b.srv.Stats().PlatformRotations)
}

// TestRotationInAutoMode: wechatpay-go's auto mode meets an answer it
// cannot verify after a rotation, downloads the certificates again (the
// download verifies with the old certificate) and then verifies the
// retry. The emulator counts every download.
func TestRotationInAutoMode(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client, mgr := autoDownloadClientAndMgr(t, b.srv)
	require.Len(t, b.srv.CertificateDownloads(), 1, "the download at start")
	newCert, err := b.srv.RotatePlatformCertificate()
	require.NoError(t, err)
	body := importBody{OpenID: openid, OutRequestNo: "auto-rot-1"}

	_, _, err = doImport(t, client, b.srv.URL, testCard, body)
	require.Error(t, err, "signed with a certificate not downloaded yet")

	mgr.DownloadCertificates(t.Context())
	require.Contains(t, mgr.GetCertificateMap(t.Context(), b.keys.MchID), utils.GetCertificateSerialNumber(*newCert))
	code, res, err := doImport(t, client, b.srv.URL, testCard, body)

	require.NoError(t, err)
	require.Regexp(t, cardCode, code)
	require.Equal(t, utils.GetCertificateSerialNumber(*newCert), res.Response.Header.Get("Wechatpay-Serial"))
	require.Equal(t, utils.GetCertificateSerialNumber(*newCert), res.Request.Header.Get("Wechatpay-Serial"), "the client now asks for the new one")
	require.Equal(t, 1, b.srv.ImportCount(testCard, openid))
	downloads := b.srv.CertificateDownloads()
	require.Len(t, downloads, 2)
	require.False(t, downloads[1].Before(downloads[0]))
	require.Equal(t, 2, b.srv.Stats().CertificateDownloads)
}

package wechatpaytest_test

import (
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

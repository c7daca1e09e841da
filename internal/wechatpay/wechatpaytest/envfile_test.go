package wechatpaytest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

func TestWriteDir(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dir := filepath.Join(t.TempDir(), "sandbox")

	env, err := b.keys.WriteDir(dir, b.srv.URL)
	require.NoError(t, err)

	t.Run("env file matches the returned map", func(t *testing.T) {
		got, err := wechatpaytest.ReadEnvFile(filepath.Join(dir, wechatpaytest.FileEnv))
		require.NoError(t, err)
		require.Equal(t, env, got)
		require.Equal(t, b.srv.URL, env["WECHATPAY_BASE_URL"])
		require.Equal(t, b.keys.MchID, env["WECHATPAY_MCHID"])
		require.Equal(t, b.keys.MchCertSerial, env["WECHATPAY_MCH_CERT_SERIAL"])
		require.Equal(t, b.keys.PublicKeyID, env["WECHATPAY_PUBLIC_KEY_ID"])
		require.True(t, filepath.IsAbs(env["WECHATPAY_MCH_PRIVATE_KEY_FILE"]))
	})
	t.Run("wechatpay-go loads every file", func(t *testing.T) {
		key, err := utils.LoadPrivateKeyWithPath(env["WECHATPAY_MCH_PRIVATE_KEY_FILE"])
		require.NoError(t, err)
		require.True(t, key.Equal(b.keys.MchPrivateKey))
		pub, err := utils.LoadPublicKeyWithPath(env["WECHATPAY_PUBLIC_KEY_FILE"])
		require.NoError(t, err)
		require.True(t, pub.Equal(b.keys.WechatPayPublicKey()))
		mchCert, err := utils.LoadCertificateWithPath(filepath.Join(dir, wechatpaytest.FileMchCert))
		require.NoError(t, err)
		require.Equal(t, b.keys.MchCertSerial, utils.GetCertificateSerialNumber(*mchCert))
		platform, err := utils.LoadCertificateWithPath(filepath.Join(dir, wechatpaytest.FilePlatformCert))
		require.NoError(t, err)
		require.Equal(t, b.keys.PlatformSerial, utils.GetCertificateSerialNumber(*platform))
		apiv3, err := os.ReadFile(filepath.Join(dir, wechatpaytest.FileAPIv3Key))
		require.NoError(t, err)
		require.Equal(t, b.keys.APIv3Key, string(apiv3))
	})
	t.Run("the other modes are shown commented out", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(dir, wechatpaytest.FileEnv))
		require.NoError(t, err)
		require.Contains(t, string(raw), "\n# WECHATPAY_PLATFORM_CERT_FILE="+filepath.Join(dir, wechatpaytest.FilePlatformCert)+"\n")
		require.Contains(t, string(raw), "\n# WECHATPAY_APIV3_KEY_FILE="+filepath.Join(dir, wechatpaytest.FileAPIv3Key)+"\n")
	})
	t.Run("secrets are private", func(t *testing.T) {
		for _, name := range []string{wechatpaytest.FileMchPrivateKey, wechatpaytest.FileAPIv3Key} {
			fi, err := os.Stat(filepath.Join(dir, name))
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), name)
		}
	})
	t.Run("a client configured from the env file imports", func(t *testing.T) {
		key, err := utils.LoadPrivateKeyWithPath(env["WECHATPAY_MCH_PRIVATE_KEY_FILE"])
		require.NoError(t, err)
		pub, err := utils.LoadPublicKeyWithPath(env["WECHATPAY_PUBLIC_KEY_FILE"])
		require.NoError(t, err)
		client, err := core.NewClient(t.Context(),
			option.WithWechatPayPublicKeyAuthCipher(env["WECHATPAY_MCHID"], env["WECHATPAY_MCH_CERT_SERIAL"], key, env["WECHATPAY_PUBLIC_KEY_ID"], pub),
			option.WithHTTPClient(b.srv.Client()))
		require.NoError(t, err)

		code, _, err := doImport(t, client, env["WECHATPAY_BASE_URL"], testCard, importBody{OpenID: openid, OutRequestNo: "env-1"})

		require.NoError(t, err)
		require.Regexp(t, cardCode, code)
	})
}

func TestReadEnvFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		want    map[string]string
		wantErr string
	}{
		{name: "empty", content: "", want: map[string]string{}},
		{name: "comments and blank lines", content: "# x\n\n  # y=1\nA=1\n", want: map[string]string{"A": "1"}},
		{name: "value keeps everything after the first =", content: "URL=http://h/?a=b\n", want: map[string]string{"URL": "http://h/?a=b"}},
		{name: "CRLF line ends", content: "A=1\r\nB=2\r\n", want: map[string]string{"A": "1", "B": "2"}},
		{name: "empty value", content: "A=\n", want: map[string]string{"A": ""}},
		{name: "no =", content: "A=1\nB\n", wantErr: "line 2"},
		{name: "bad name", content: "1A=1\n", wantErr: "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "env")
			require.NoError(t, os.WriteFile(path, []byte(tt.content), 0o600))

			got, err := wechatpaytest.ReadEnvFile(path)

			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.False(t, strings.Contains(err.Error(), "A=1"), "errors do not quote values")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

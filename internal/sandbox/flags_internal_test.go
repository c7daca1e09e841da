package sandbox

import (
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		want    Config
		wantErr string
	}{
		{name: "defaults", want: Config{Addr: DefaultAddr, Dir: "sandbox"}},
		{
			name: "faults and identity",
			args: []string{"--transient-share", "0.1", "--rate-limit", "50", "--latency", "80ms", "--mchid", "1230000109", "--mch-cert-serial", "5157F09E", "--public-key-id", "PUB_KEY_ID_01"},
			want: Config{Addr: DefaultAddr, Dir: "sandbox", TransientShare: 0.1, RateLimit: 50, Latency: 80e6,
				Identity: Identity{MchID: "1230000109", MchCertSerial: "5157F09E", PublicKeyID: "PUB_KEY_ID_01"}},
		},
		{name: "share above one", args: []string{"--transient-share", "1.5"}, wantErr: "--transient-share: must be between 0 and 1, got 1.5"},
		{name: "negative rate limit", args: []string{"--rate-limit", "-1"}, wantErr: "--rate-limit: must not be negative"},
		{name: "negative latency", args: []string{"--latency", "-1s"}, wantErr: "--latency: must not be negative"},
		{name: "merchant number with letters", args: []string{"--mchid", "19x"}, wantErr: "--mchid: \"19x\" is not a merchant number"},
		{name: "lowercase serial", args: []string{"--mch-cert-serial", "5157f09e"}, wantErr: "--mch-cert-serial: \"5157f09e\" is not an uppercase hex serial"},
		{name: "serial with a leading zero", args: []string{"--mch-cert-serial", "0157"}, wantErr: "--mch-cert-serial"},
		{name: "public key id", args: []string{"--public-key-id", "KEY1"}, wantErr: "--public-key-id: \"KEY1\" must start with PUB_KEY_ID_"},
		{name: "stray argument", args: []string{"serve"}, wantErr: `unexpected argument "serve"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, _, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestStoredKeysWinOnlyWhenTheyMatch(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	id := Identity{MchID: "1230000109", MchCertSerial: "5157F09EFDC096DE15EBE81A47057A7232F1B8E1", PublicKeyID: "PUB_KEY_ID_0112300001092026"}
	made, generated, err := loadOrGenerate(dir, id)
	require.NoError(t, err)
	require.True(t, generated)
	require.Equal(t, id, Identity{MchID: made.MchID, MchCertSerial: made.MchCertSerial, PublicKeyID: made.PublicKeyID})
	_, err = made.WriteDir(dir, "http://127.0.0.1:1")
	require.NoError(t, err)
	require.NoError(t, saveWeChatSide(dir, made))

	again, generated, err := loadOrGenerate(dir, Identity{})
	require.NoError(t, err)
	require.False(t, generated)
	require.Equal(t, made.MchID, again.MchID, "the merchant number comes back from the certificate")
	require.Equal(t, made.MchCertSerial, again.MchCertSerial)
	require.Equal(t, made.PublicKeyID, again.PublicKeyID)
	require.Equal(t, made.PlatformSerial, again.PlatformSerial)
	require.Equal(t, made.APIv3Key, again.APIv3Key)
	require.True(t, made.MchPrivateKey.Equal(again.MchPrivateKey))
	require.True(t, made.PublicKeyPrivate.Equal(again.PublicKeyPrivate))
	require.True(t, made.PlatformPrivateKey.Equal(again.PlatformPrivateKey))

	_, _, err = loadOrGenerate(dir, Identity{MchID: "1900000001"})
	require.ErrorContains(t, err, "--mchid 1900000001, but the stored keys are merchant 1230000109; remove "+dir)
}

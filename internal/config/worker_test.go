package config_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/config"
	"github.com/cardimport/cardimport/internal/redisconn"
	"github.com/cardimport/cardimport/internal/wechatpay"
)

// keyDir writes a merchant key and a WeChat Pay public key, as a merchant
// would download them, and returns an environment pointing at them.
func keyDir(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	write(t, dir, "apiclient_key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	write(t, dir, "pub_key.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	write(t, dir, "garbage.pem", []byte("not a key\n"))
	write(t, dir, "apiv3_key.txt", []byte("0123456789abcdef0123456789abcdef\n"))
	return map[string]string{
		"REDIS_URL":                      "redis://127.0.0.1:6379/3",
		"WECHATPAY_MCHID":                "1900000001",
		"WECHATPAY_MCH_CERT_SERIAL":      "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
		"WECHATPAY_MCH_PRIVATE_KEY_FILE": filepath.Join(dir, "apiclient_key.pem"),
		"WECHATPAY_PUBLIC_KEY_ID":        "PUB_KEY_ID_0119000000012026112800000000000001",
		"WECHATPAY_PUBLIC_KEY_FILE":      filepath.Join(dir, "pub_key.pem"),
		"dir":                            dir,
	}
}

func write(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o600))
}

func lookup(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadWorker(t *testing.T) {
	t.Parallel()
	env := keyDir(t)
	dir := env["dir"]
	tests := []struct {
		name    string
		args    []string
		change  map[string]string
		wantErr []string // each must appear in the error
		check   func(t *testing.T, w config.Worker)
	}{
		{
			name: "public key mode with defaults",
			check: func(t *testing.T, w config.Worker) {
				require.Equal(t, "membercard", w.Queue)
				require.Equal(t, config.DefaultConcurrency, w.Concurrency)
				require.Equal(t, 2*time.Second, w.RetryMinDelay)
				require.Equal(t, 10*time.Minute, w.RetryMaxDelay)
				require.Equal(t, redisconn.ClientOpt{RedisClientOpt: asynq.RedisClientOpt{Addr: "127.0.0.1:6379", DB: 3}}, w.Redis)
				mode, err := w.WeChat.Mode()
				require.NoError(t, err)
				require.Equal(t, wechatpay.ModePublicKey, mode)
			},
		},
		{
			name:   "flags override the environment",
			args:   []string{"--queue", "vip", "--concurrency", "7", "--retry-min-delay", "1s", "--redis-url", "redis://10.0.0.1:6380/1"},
			change: map[string]string{"QUEUE": "env-queue", "RETRY_MIN_DELAY": "5s"},
			check: func(t *testing.T, w config.Worker) {
				require.Equal(t, "vip", w.Queue)
				require.Equal(t, 7, w.Concurrency)
				require.Equal(t, time.Second, w.RetryMinDelay)
				require.Equal(t, redisconn.ClientOpt{RedisClientOpt: asynq.RedisClientOpt{Addr: "10.0.0.1:6380", DB: 1}}, w.Redis)
			},
		},
		{
			name:   "auto-download mode",
			change: map[string]string{"WECHATPAY_PUBLIC_KEY_ID": "", "WECHATPAY_PUBLIC_KEY_FILE": "", "WECHATPAY_APIV3_KEY_FILE": filepath.Join(dir, "apiv3_key.txt")},
			check: func(t *testing.T, w config.Worker) {
				mode, err := w.WeChat.Mode()
				require.NoError(t, err)
				require.Equal(t, wechatpay.ModeAutoCertificate, mode)
				require.Len(t, w.WeChat.APIv3Key, 32)
			},
		},
		{
			name:    "missing key file names the variable",
			change:  map[string]string{"WECHATPAY_MCH_PRIVATE_KEY_FILE": filepath.Join(dir, "nope.pem")},
			wantErr: []string{"WECHATPAY_MCH_PRIVATE_KEY_FILE: open " + filepath.Join(dir, "nope.pem") + ": no such file or directory"},
		},
		{
			name:    "bad PEM names the variable",
			change:  map[string]string{"WECHATPAY_MCH_PRIVATE_KEY_FILE": filepath.Join(dir, "garbage.pem")},
			wantErr: []string{"WECHATPAY_MCH_PRIVATE_KEY_FILE: " + filepath.Join(dir, "garbage.pem") + ": no PEM block found"},
		},
		{
			name:    "public key where a private key belongs",
			change:  map[string]string{"WECHATPAY_MCH_PRIVATE_KEY_FILE": filepath.Join(dir, "pub_key.pem")},
			wantErr: []string{`WECHATPAY_MCH_PRIVATE_KEY_FILE: ` + filepath.Join(dir, "pub_key.pem") + `: PEM block is "PUBLIC KEY", want PRIVATE KEY`},
		},
		{
			name:    "bad REDIS_URL hides its password",
			change:  map[string]string{"REDIS_URL": "redis://:s3cret@host:port/0"},
			wantErr: []string{"REDIS_URL: "},
		},
		{
			name:    "missing REDIS_URL",
			change:  map[string]string{"REDIS_URL": ""},
			wantErr: []string{"REDIS_URL: is required"},
		},
		{
			name:    "no verification mode",
			change:  map[string]string{"WECHATPAY_PUBLIC_KEY_ID": "", "WECHATPAY_PUBLIC_KEY_FILE": ""},
			wantErr: []string{"WECHATPAY_PUBLIC_KEY_FILE, WECHATPAY_PLATFORM_CERT_FILE or WECHATPAY_APIV3_KEY_FILE: one is required"},
		},
		{
			name:    "every problem reported at once",
			change:  map[string]string{"WECHATPAY_MCHID": "", "RETRY_MAX_DELAY": "10", "WECHATPAY_BASE_URL": "https://api.example.com/prefix"},
			wantErr: []string{"WECHATPAY_MCHID: is required", `RETRY_MAX_DELAY: "10" has no unit (e.g. 2s, 10m)`, "WECHATPAY_BASE_URL: must be scheme and host only"},
		},
		{
			name:    "backoff bounds in order",
			change:  map[string]string{"RETRY_MIN_DELAY": "1m", "RETRY_MAX_DELAY": "10s"},
			wantErr: []string{"RETRY_MAX_DELAY: 10s is shorter than RETRY_MIN_DELAY 1m0s"},
		},
		{
			name:    "bad concurrency",
			args:    []string{"--concurrency", "0"},
			wantErr: []string{"--concurrency: must be at least 1, got 0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := maps.Clone(env)
			maps.Copy(e, tt.change)
			w, err := config.LoadWorker(tt.args, lookup(e), io.Discard)
			if len(tt.wantErr) > 0 {
				require.Error(t, err)
				for _, want := range tt.wantErr {
					require.Contains(t, err.Error(), want)
				}
				require.NotContains(t, err.Error(), "s3cret")
				require.False(t, strings.Contains(err.Error(), "BEGIN"), "no key material in errors")
				return
			}
			require.NoError(t, err)
			tt.check(t, w)
		})
	}
}

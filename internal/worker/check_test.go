package worker_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

// runWorker runs the worker binary to its end with env and args, and
// returns its exit code and output.
func runWorker(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	bin, err := testkit.Command("worker")
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	cmd.Env = testkit.Environ(env)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil {
		require.ErrorAs(t, err, &exit, string(out))
		return exit.ExitCode(), string(out)
	}
	return 0, string(out)
}

// TestWorkerCheck: `worker check` against the sandbox says all is well and
// exits 0; against a sandbox with other keys it exits 1 naming the part
// that failed.
func TestWorkerCheck(t *testing.T) {
	t.Parallel()
	r := testkit.NewRedis(t)
	keys := wechatpaytest.TestKeys(t)
	other, err := wechatpaytest.GenerateKeys()
	require.NoError(t, err)
	// A WeChat that knows our merchant key but signs with keys we do not
	// hold.
	foreignSigner := *other
	foreignSigner.MchID, foreignSigner.MchCert, foreignSigner.MchCertSerial, foreignSigner.MchPrivateKey = keys.MchID, keys.MchCert, keys.MchCertSerial, keys.MchPrivateKey
	foreignSigner.PublicKeyID = keys.PublicKeyID
	tests := []struct {
		name     string
		keys     *wechatpaytest.Keys
		wantCode int
		want     []string
	}{
		{name: "all good", keys: keys, want: []string{
			"request signature: ok, accepted (http 200",
			"answer signature: ok, verified with " + keys.PublicKeyID,
			"clock: ok, 0s from WeChat's",
			"rate limit: 10 requests a second",
			"key mode: public_key",
			"check: ok",
		}},
		{name: "WeChat knows another merchant key", keys: other, wantCode: 1, want: []string{
			"request signature: FAIL refused (401 SIGN_ERROR",
			"hint: check WECHATPAY_MCH_PRIVATE_KEY_FILE",
			"check: FAIL",
		}},
		{name: "WeChat signs with a key we do not hold", keys: &foreignSigner, wantCode: 1, want: []string{
			"request signature: ok",
			"answer signature: FAIL not verified",
			"WECHATPAY_PUBLIC_KEY_FILE",
			"check: FAIL",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ours := wechatpaytest.NewServer(keys)
			t.Cleanup(ours.Close)
			env := testkit.WorkerEnv(t, ours, r, r.Queue(t))
			sandbox := wechatpaytest.NewServer(tt.keys)
			t.Cleanup(sandbox.Close)
			env["WECHATPAY_BASE_URL"] = sandbox.URL
			code, out := runWorker(t, env, "check")
			require.Equal(t, tt.wantCode, code, out)
			for _, w := range tt.want {
				require.Contains(t, out, w)
			}
		})
	}
}

// TestWorkerRefusesTheMerchantCertificateAsPlatformCertificate: a worker
// configured to verify WeChat's answers with the merchant's own
// certificate would burn every member's retries; it does not start.
func TestWorkerRefusesTheMerchantCertificateAsPlatformCertificate(t *testing.T) {
	t.Parallel()
	r := testkit.NewRedis(t)
	srv := wechatpaytest.NewServer(wechatpaytest.TestKeys(t))
	t.Cleanup(srv.Close)
	env := testkit.WorkerEnv(t, srv, r, r.Queue(t))
	dir := filepath.Dir(env["WECHATPAY_MCH_PRIVATE_KEY_FILE"])
	delete(env, "WECHATPAY_PUBLIC_KEY_ID")
	delete(env, "WECHATPAY_PUBLIC_KEY_FILE")
	env["WECHATPAY_PLATFORM_CERT_FILE"] = filepath.Join(dir, wechatpaytest.FileMchCert)
	code, out := runWorker(t, env)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "WECHATPAY_PLATFORM_CERT_FILE: holds the merchant's own API certificate")
	require.Zero(t, srv.Stats().Requests, "nothing was sent to WeChat")
}

package sandbox_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/signers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/validators"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/downloader"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

// testCard is the card id of WeChat's own examples.
const testCard = "pbLatjvWOibDc5-TBnbUk1pD12o0"

// sandboxProc is a running wechatpay-sandbox process.
type sandboxProc struct {
	cmd     *exec.Cmd
	dir     string
	envFile string
	baseURL string
	out     *testkit.Buffer
	exited  chan error
}

// startSandbox runs the built binary on a free port with its keys in dir
// and waits until it says where it listens. The test's cleanup stops it
// with SIGTERM and requires exit 0.
func startSandbox(t *testing.T, dir string, args ...string) *sandboxProc {
	t.Helper()
	if testing.Short() {
		t.Skip("starts sandbox processes")
	}
	bin, err := testkit.Command("wechatpay-sandbox")
	require.NoError(t, err)
	cmd := exec.Command(bin, append([]string{"--addr", "127.0.0.1:0", "--dir", dir}, args...)...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	p := &sandboxProc{cmd: cmd, dir: dir, out: &testkit.Buffer{}, exited: make(chan error, 1)}
	cmd.Stderr = p.out
	require.NoError(t, cmd.Start())
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			_, _ = p.out.Write([]byte(sc.Text() + "\n"))
			lines <- sc.Text()
		}
		close(lines)
		p.exited <- cmd.Wait()
	}()
	t.Cleanup(func() { p.stop(t) })
	timeout := time.After(30 * time.Second)
	for p.baseURL == "" {
		select {
		case line, ok := <-lines:
			require.True(t, ok, "sandbox exited before listening:\n%s", p.out)
			if v, ok := strings.CutPrefix(line, "env file: "); ok {
				p.envFile = v
			}
			if v, ok := strings.CutPrefix(line, "listening on "); ok {
				p.baseURL, _, _ = strings.Cut(v, " ")
			}
		case <-timeout:
			t.Fatalf("sandbox did not listen within 30s:\n%s", p.out)
		}
	}
	go func() {
		for range lines { // keep draining so the process never blocks on stdout
		}
	}()
	return p
}

// stop sends SIGTERM and requires a clean exit; stopping twice is fine.
func (p *sandboxProc) stop(t *testing.T) {
	t.Helper()
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		require.NoError(t, err, "sandbox exit:\n%s", p.out)
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Fatalf("sandbox did not stop within 30s of SIGTERM:\n%s", p.out)
	}
}

// envForMode reads the sandbox's env file the way a merchant switching
// modes edits it: public-key mode as written, or with the public-key lines
// dropped and the other mode's commented line taken in.
func envForMode(t *testing.T, path, mode string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var kept []string
	for _, line := range strings.Split(string(raw), "\n") {
		switch {
		case mode != "public_key" && strings.HasPrefix(line, "WECHATPAY_PUBLIC_KEY_"):
			continue
		case mode == "platform_certificate" && strings.HasPrefix(line, "# WECHATPAY_PLATFORM_CERT_FILE="),
			mode == "auto_certificate" && strings.HasPrefix(line, "# WECHATPAY_APIV3_KEY_FILE="):
			line = strings.TrimPrefix(line, "# ")
		}
		kept = append(kept, line)
	}
	edited := filepath.Join(t.TempDir(), "env")
	require.NoError(t, os.WriteFile(edited, []byte(strings.Join(kept, "\n")), 0o600))
	env, err := wechatpaytest.ReadEnvFile(edited)
	require.NoError(t, err)
	return env
}

// officialClient builds the unmodified wechatpay-go client from env alone,
// in the mode env selects, verifying every answer.
func officialClient(t testing.TB, env map[string]string) *core.Client {
	t.Helper()
	return officialClientWith(t, env, &http.Client{Timeout: 10 * time.Second})
}

// officialClientWith is officialClient over the given HTTP client.
func officialClientWith(t testing.TB, env map[string]string, hc *http.Client) *core.Client {
	t.Helper()
	mchID, serial := env["WECHATPAY_MCHID"], env["WECHATPAY_MCH_CERT_SERIAL"]
	key, err := utils.LoadPrivateKeyWithPath(env["WECHATPAY_MCH_PRIVATE_KEY_FILE"])
	require.NoError(t, err)
	base, err := url.Parse(env["WECHATPAY_BASE_URL"])
	require.NoError(t, err)

	var cipher core.ClientOption
	switch {
	case env["WECHATPAY_PUBLIC_KEY_FILE"] != "":
		pub, err := utils.LoadPublicKeyWithPath(env["WECHATPAY_PUBLIC_KEY_FILE"])
		require.NoError(t, err)
		cipher = option.WithWechatPayPublicKeyAuthCipher(mchID, serial, key, env["WECHATPAY_PUBLIC_KEY_ID"], pub)
	case env["WECHATPAY_PLATFORM_CERT_FILE"] != "":
		cert, err := utils.LoadCertificateWithPath(env["WECHATPAY_PLATFORM_CERT_FILE"])
		require.NoError(t, err)
		cipher = option.WithWechatPayAuthCipher(mchID, serial, key, []*x509.Certificate{cert})
	case env["WECHATPAY_APIV3_KEY_FILE"] != "":
		apiv3, err := os.ReadFile(env["WECHATPAY_APIV3_KEY_FILE"])
		require.NoError(t, err)
		cipher = option.WithWechatPayAutoAuthCipherUsingDownloaderMgr(mchID, serial, key,
			downloaderMgr(t, mchID, serial, key, string(apiv3), base))
	default:
		t.Fatal("env selects no key mode")
	}
	c, err := core.NewClient(t.Context(), cipher, option.WithHTTPClient(hc))
	require.NoError(t, err)
	return c
}

// downloaderMgr downloads the platform certificate from GET
// /v3/certificates as wechatpay-go's auto mode does. Its downloader always
// calls the production host, so the HTTP client sends those calls to the
// sandbox. The first download cannot be verified (it fetches what would
// verify it; the APIv3 key's AES-GCM vouches for it, as in
// downloader.NewCertificateDownloader); the manager the import client uses
// downloads again, verifying with that first set.
func downloaderMgr(t testing.TB, mchID, serial string, key *rsa.PrivateKey, apiv3 string, base *url.URL) *downloader.CertificateDownloaderMgr {
	t.Helper()
	rewriting := &http.Client{Timeout: 10 * time.Second, Transport: rewriteHost{target: base}}
	signer := &signers.SHA256WithRSASigner{MchID: mchID, CertificateSerialNo: serial, PrivateKey: key}
	boot, err := core.NewClientWithDialSettings(t.Context(), &core.DialSettings{Signer: signer, Validator: &validators.NullValidator{}, HTTPClient: rewriting})
	require.NoError(t, err)
	first, err := downloader.NewCertificateDownloaderWithClient(t.Context(), boot, apiv3)
	require.NoError(t, err)
	verified, err := core.NewClientWithDialSettings(t.Context(), &core.DialSettings{
		Signer: signer, HTTPClient: rewriting,
		Validator: validators.NewWechatPayResponseValidator(verifiers.NewSHA256WithRSAVerifier(first)),
	})
	require.NoError(t, err)
	mgr := downloader.NewCertificateDownloaderMgr(context.Background())
	t.Cleanup(mgr.Stop)
	require.NoError(t, mgr.RegisterDownloaderWithClient(t.Context(), verified, mchID, apiv3))
	require.NotEmpty(t, mgr.GetCertificateMap(t.Context(), mchID), "no platform certificate downloaded")
	return mgr
}

// rewriteHost sends every request to target, keeping path and query.
type rewriteHost struct{ target *url.URL }

func (rt rewriteHost) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host, r.Host = rt.target.Scheme, rt.target.Host, rt.target.Host
	return http.DefaultTransport.RoundTrip(r)
}

// importBody is what the worker sends.
type importBody struct {
	OpenID       string `json:"openid"`
	Code         string `json:"code,omitempty"`
	OutRequestNo string `json:"out_request_no"`
}

// importPath is the endpoint of a card's import.
func importPath(card string) string {
	return "/v3/marketing/membercard-open/cards/" + url.PathEscape(card) + "/users/import"
}

// importMember imports through c and returns the card code of a verified
// 200, or the SDK's error.
func importMember(t *testing.T, c *core.Client, baseURL, card string, body importBody) (string, error) {
	t.Helper()
	res, err := c.Post(t.Context(), baseURL+importPath(card), body)
	if err != nil {
		return "", err
	}
	require.Equal(t, http.StatusOK, res.Response.StatusCode)
	var out struct {
		Code string `json:"code"`
	}
	require.NoError(t, core.UnMarshalResponse(res.Response, &out))
	return out.Code, nil
}

// stats reads the sandbox's /stats.
func stats(t *testing.T, baseURL string) wechatpaytest.Stats {
	t.Helper()
	res, err := http.Get(baseURL + "/stats")
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	var s wechatpaytest.Stats
	require.NoError(t, json.NewDecoder(res.Body).Decode(&s))
	return s
}

func TestOfficialClientFromTheEnvFileInEveryKeyMode(t *testing.T) {
	t.Parallel()
	p := startSandbox(t, t.TempDir())
	tests := []struct {
		name string
		mode string
	}{
		{name: "public key", mode: "public_key"},
		{name: "platform certificate", mode: "platform_certificate"},
		{name: "auto-downloaded certificates", mode: "auto_certificate"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := envForMode(t, p.envFile, tt.mode)
			require.Equal(t, p.baseURL, env["WECHATPAY_BASE_URL"])
			c := officialClient(t, env)
			body := importBody{OpenID: fmt.Sprintf("oUpF8uMuAJO_M2pxb1Q9zNjWeS%02d", i), OutRequestNo: "sandbox-mode-" + tt.mode}

			code, err := importMember(t, c, env["WECHATPAY_BASE_URL"], testCard, body)
			require.NoError(t, err, "import in %s mode", tt.mode)
			require.Regexp(t, `^\d{12}$`, code)

			again, err := importMember(t, c, env["WECHATPAY_BASE_URL"], testCard, body)
			require.NoError(t, err)
			require.Equal(t, code, again, "a repeated out_request_no replays the first import")
		})
	}
	s := stats(t, p.baseURL)
	require.Equal(t, 3, s.Imports)
	require.Equal(t, 3, s.Replays)
	require.Equal(t, 3, s.Members)
	require.Empty(t, s.Refusals)
}

func TestForgedSignatureIsRefused(t *testing.T) {
	t.Parallel()
	p := startSandbox(t, t.TempDir())
	env := envForMode(t, p.envFile, "public_key")
	pub, err := utils.LoadPublicKeyWithPath(env["WECHATPAY_PUBLIC_KEY_FILE"])
	require.NoError(t, err)
	// A key the sandbox never issued, under the merchant's real serial: what
	// an attacker without the merchant's key, or a worker given the wrong
	// key file, sends.
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	c, err := core.NewClient(t.Context(),
		option.WithWechatPayPublicKeyAuthCipher(env["WECHATPAY_MCHID"], env["WECHATPAY_MCH_CERT_SERIAL"], other, env["WECHATPAY_PUBLIC_KEY_ID"], pub))
	require.NoError(t, err)

	_, err = importMember(t, c, p.baseURL, testCard, importBody{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", OutRequestNo: "forged-1"})

	var apiErr *core.APIError
	require.True(t, errors.As(err, &apiErr), "want *core.APIError, got %v", err)
	require.Equal(t, http.StatusUnauthorized, apiErr.StatusCode)
	require.Equal(t, "SIGN_ERROR", apiErr.Code)
	s := stats(t, p.baseURL)
	require.Equal(t, 0, s.Imports)
	require.Equal(t, map[string]int{"SIGN_ERROR": 1}, s.Refusals)
}

func TestKeysSurviveARestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := startSandbox(t, dir)
	env := envForMode(t, first.envFile, "public_key")
	first.stop(t)
	require.Contains(t, first.out.String(), "keys: generated in "+dir)

	second := startSandbox(t, dir)
	require.Contains(t, second.out.String(), "keys: reused from "+dir)
	// The worker's files and identity are unchanged; only the port moved.
	c := officialClient(t, env)
	code, err := importMember(t, c, second.baseURL, testCard, importBody{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", OutRequestNo: "restart-1"})
	require.NoError(t, err)
	require.Regexp(t, `^\d{12}$`, code)
}

func TestFaultFlagsAndRules(t *testing.T) {
	t.Parallel()
	p := startSandbox(t, t.TempDir(), "--transient-share", "1", "--rate-limit", "1000")
	env := envForMode(t, p.envFile, "public_key")
	c := officialClient(t, env)
	tests := []struct {
		name     string
		card     string
		openid   string
		wantHTTP int
		wantCode string
	}{
		{name: "unknown card", card: wechatpaytest.CardIDPrefixNotFound + "x", openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS01", wantHTTP: 404, wantCode: "NOT_FOUND"},
		{name: "another merchant's card", card: wechatpaytest.CardIDPrefixNoAuth + "x", openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS02", wantHTTP: 403, wantCode: "NO_AUTH"},
		{name: "no trade in a year", card: testCard, openid: wechatpaytest.OpenIDPrefixNoTrade + "abcdefgh", wantHTTP: 400, wantCode: "INVALID_REQUEST"},
		{name: "already a member", card: testCard, openid: wechatpaytest.OpenIDPrefixMember + "abcdefgh", wantHTTP: 400, wantCode: "INVALID_REQUEST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := importBody{OpenID: tt.openid, OutRequestNo: "rule-" + tt.openid}
			// --transient-share 1: every first attempt is a 500, the retry
			// meets the rule.
			_, err := importMember(t, c, p.baseURL, tt.card, body)
			var apiErr *core.APIError
			require.True(t, errors.As(err, &apiErr))
			require.Equal(t, "SYSTEM_ERROR", apiErr.Code)

			_, err = importMember(t, c, p.baseURL, tt.card, body)
			require.True(t, errors.As(err, &apiErr))
			require.Equal(t, tt.wantHTTP, apiErr.StatusCode)
			require.Equal(t, tt.wantCode, apiErr.Code)
		})
	}
	s := stats(t, p.baseURL)
	require.Equal(t, map[string]int{"SYSTEM_ERROR": 4, "NOT_FOUND": 1, "NO_AUTH": 1, "INVALID_REQUEST": 2}, s.Refusals)
}

func TestRateLimitFlag(t *testing.T) {
	t.Parallel()
	p := startSandbox(t, t.TempDir(), "--rate-limit", "2")
	c := officialClient(t, envForMode(t, p.envFile, "public_key"))
	var limited int
	for i := range 10 {
		_, err := importMember(t, c, p.baseURL, testCard, importBody{OpenID: fmt.Sprintf("oUpF8uMuAJO_M2pxb1Q9zNjWeR%02d", i), OutRequestNo: fmt.Sprintf("rl-%d", i)})
		var apiErr *core.APIError
		if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusTooManyRequests {
			limited++
		}
	}
	// Ten calls at two a second pass only if they take five seconds; at
	// a few milliseconds each, some are refused even on a loaded machine.
	s := stats(t, p.baseURL)
	require.Equal(t, limited, s.Refusals["RATELIMIT_EXCEEDED"])
	require.Equal(t, 10-limited, s.Imports)
	require.Positive(t, limited)
}

// control calls one of the sandbox's /control/ routes and decodes its
// JSON answer.
func control(t *testing.T, baseURL, route string, query url.Values) map[string]any {
	t.Helper()
	res, err := http.Post(baseURL+"/control/"+route+"?"+query.Encode(), "", nil)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	var out map[string]any
	require.NoError(t, json.NewDecoder(res.Body).Decode(&out))
	return out
}

// listCards pages through the cards a member holds, as a worker confirming
// an already-member does, and returns them by card id with their codes.
func listCards(t *testing.T, c *core.Client, baseURL, openid string) map[string]string {
	t.Helper()
	cards := map[string]string{}
	for offset := 0; ; offset++ {
		q := url.Values{"openid": {openid}, "offset": {fmt.Sprint(offset)}, "limit": {"20"}}
		res, err := c.Get(t.Context(), baseURL+"/v3/marketing/membercard-open/user/cards?"+q.Encode())
		require.NoError(t, err, "a verified list page")
		var page struct {
			Data []struct {
				CardID string `json:"card_id"`
				Code   string `json:"code"`
			} `json:"data"`
			TotalCount int `json:"total_count"`
		}
		require.NoError(t, core.UnMarshalResponse(res.Response, &page))
		require.LessOrEqual(t, len(page.Data), 20)
		for _, card := range page.Data {
			cards[card.CardID] = card.Code
		}
		if len(cards) >= page.TotalCount || len(page.Data) == 0 {
			return cards
		}
	}
}

func TestControlRoutes(t *testing.T) {
	t.Parallel()
	p := startSandbox(t, t.TempDir())
	env := envForMode(t, p.envFile, "public_key")
	noRedirects := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	c := officialClientWith(t, env, noRedirects)

	t.Run("seed a member holding 25 cards, listed in two pages", func(t *testing.T) {
		const member = "oUpF8uMuAJO_M2pxb1Q9zNjWeSeed"
		q := url.Values{"openid": {member}}
		for i := range 25 {
			q.Add("card_id", fmt.Sprintf("pSeeded%02d", i))
		}
		seeded := control(t, p.baseURL, "seed", q)["codes"].(map[string]any)
		require.Len(t, seeded, 25)

		listed := listCards(t, c, p.baseURL, member)

		require.Len(t, listed, 25)
		for card, code := range seeded {
			require.Equal(t, code, listed[card])
		}
		_, err := importMember(t, c, p.baseURL, "pSeeded00", importBody{OpenID: member, OutRequestNo: "seeded-1"})
		var apiErr *core.APIError
		require.True(t, errors.As(err, &apiErr))
		require.Equal(t, wechatpaytest.MessageAlreadyMember, apiErr.Message)
	})
	t.Run("an o_member_ openid is listed with the code it was refused for", func(t *testing.T) {
		member := wechatpaytest.OpenIDPrefixMember + "sandbox01"
		_, err := importMember(t, c, p.baseURL, testCard, importBody{OpenID: member, OutRequestNo: "member-1"})
		var apiErr *core.APIError
		require.True(t, errors.As(err, &apiErr))
		require.Equal(t, "INVALID_REQUEST", apiErr.Code)
		first := listCards(t, c, p.baseURL, member)
		require.Regexp(t, `^\d{12}$`, first[testCard])
		require.Equal(t, first, listCards(t, c, p.baseURL, member), "the same code every time")
	})
	t.Run("forged refusal for one out_request_no", func(t *testing.T) {
		body := importBody{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeForg", OutRequestNo: "forge-ctl-1"}
		control(t, p.baseURL, "forge-refusal", url.Values{"status": {"400"}, "code": {"INVALID_REQUEST"}, "message": {wechatpaytest.MessageAlreadyMember}, "out_request_no": {body.OutRequestNo}})

		_, err := importMember(t, c, p.baseURL, testCard, body)
		var apiErr *core.APIError
		require.True(t, errors.As(err, &apiErr))
		require.Equal(t, http.StatusBadRequest, apiErr.StatusCode)
		require.Empty(t, apiErr.Header.Get("Wechatpay-Signature"), "forged: unsigned")

		code, err := importMember(t, c, p.baseURL, testCard, body)
		require.NoError(t, err, "the retry reaches the sandbox")
		require.Regexp(t, `^\d{12}$`, code)
	})
	t.Run("redirect", func(t *testing.T) {
		control(t, p.baseURL, "redirect", url.Values{"status": {"307"}, "location": {"http://127.0.0.1:1/elsewhere"}})
		body := importBody{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeRedi", OutRequestNo: "redirect-ctl-1"}

		_, err := importMember(t, c, p.baseURL, testCard, body)
		var apiErr *core.APIError
		require.True(t, errors.As(err, &apiErr))
		require.Equal(t, http.StatusTemporaryRedirect, apiErr.StatusCode)
		require.Equal(t, "http://127.0.0.1:1/elsewhere", apiErr.Header.Get("Location"))

		_, err = importMember(t, c, p.baseURL, testCard, body)
		require.NoError(t, err)
	})
	t.Run("refusals are signed, 401 is not", func(t *testing.T) {
		pub, err := utils.LoadPublicKeyWithPath(env["WECHATPAY_PUBLIC_KEY_FILE"])
		require.NoError(t, err)
		validator := validators.NewWechatPayResponseValidator(verifiers.NewSHA256WithRSAPubkeyVerifier(env["WECHATPAY_PUBLIC_KEY_ID"], *pub))
		res, err := c.Post(t.Context(), p.baseURL+importPath(wechatpaytest.CardIDPrefixNotFound+"x"), importBody{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeSign", OutRequestNo: "signed-404"})
		var apiErr *core.APIError
		require.True(t, errors.As(err, &apiErr))
		require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
		require.NoError(t, validator.Validate(t.Context(), res.Response))

		unsigned, err := http.Post(p.baseURL+importPath(testCard), "application/json", strings.NewReader(`{}`))
		require.NoError(t, err)
		defer unsigned.Body.Close()
		require.Equal(t, http.StatusUnauthorized, unsigned.StatusCode)
		require.Empty(t, unsigned.Header.Get("Wechatpay-Signature"))
	})
	t.Run("bad control requests are refused", func(t *testing.T) {
		for _, route := range []string{"forge-refusal?status=200", "redirect?status=302", "redirect?status=400&location=http://x", "seed?openid=o", "forge-refusal?status=400&n=0"} {
			res, err := http.Post(p.baseURL+"/control/"+route, "", nil)
			require.NoError(t, err)
			res.Body.Close()
			require.Equal(t, http.StatusBadRequest, res.StatusCode, route)
		}
	})
	// Last: the rotation changes what the platform-certificate client
	// verifies.
	t.Run("rotate the platform certificate", func(t *testing.T) {
		platform := officialClient(t, envForMode(t, p.envFile, "platform_certificate"))
		_, err := importMember(t, platform, p.baseURL, testCard, importBody{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeRot0", OutRequestNo: "rotate-0"})
		require.NoError(t, err, "before the rotation")

		rotated := control(t, p.baseURL, "rotate-platform-certificate", nil)

		serial := rotated["serial"].(string)
		require.Len(t, rotated["certificates"], 2)
		res, err := platform.Post(t.Context(), p.baseURL+importPath(testCard), importBody{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeRot1", OutRequestNo: "rotate-1"})
		require.Error(t, err, "signed with a certificate the client does not hold")
		require.Equal(t, serial, res.Response.Header.Get("Wechatpay-Serial"))
		_, err = importMember(t, c, p.baseURL, testCard, importBody{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeRot2", OutRequestNo: "rotate-2"})
		require.NoError(t, err, "public-key mode is not affected")
	})
	s := stats(t, p.baseURL)
	require.Equal(t, 1, s.ForgedRefusals)
	require.Equal(t, 1, s.Redirects)
	require.Equal(t, 1, s.PlatformRotations)
	require.Positive(t, s.Lists)
	p.stop(t)
	require.Contains(t, p.out.String(), "control: platform certificate rotated")
	require.NotContains(t, p.out.String(), "oUpF8uMuAJO", "no openid in the sandbox's output")
	require.NotContains(t, p.out.String(), wechatpaytest.OpenIDPrefixMember+"sandbox01")
}

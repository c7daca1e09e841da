package deploy_test

import (
	"bufio"
	"context"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/cardimport/cardimport/internal/config"
	"github.com/cardimport/cardimport/internal/sandbox"
	"github.com/cardimport/cardimport/internal/wechatpay"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

// repoRoot is where docker-compose.yml and the Dockerfile are.
const repoRoot = "../.."

type composeFile struct {
	Services map[string]service `yaml:"services"`
	Volumes  map[string]any     `yaml:"volumes"`
}

type service struct {
	Image       string                `yaml:"image"`
	Build       string                `yaml:"build"`
	Entrypoint  []string              `yaml:"entrypoint"`
	Command     []string              `yaml:"command"`
	Environment map[string]string     `yaml:"environment"`
	DependsOn   map[string]dependency `yaml:"depends_on"`
	Volumes     []string              `yaml:"volumes"`
	Ports       []string              `yaml:"ports"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

type dependency struct {
	Condition string `yaml:"condition"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	require.NoError(t, err)
	var c composeFile
	require.NoError(t, yaml.Unmarshal(raw, &c))
	return c
}

// interpolation is compose's ${NAME:-default}, ${NAME-default} and
// ${NAME:?message}.
var interpolation = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*)|:?\?[^}]*)?\}`)

// resolve gives a compose value as `docker compose up` does with none of
// the variables set, so the stack must work out of the box.
func resolve(t *testing.T, v string) string {
	t.Helper()
	return interpolation.ReplaceAllStringFunc(v, func(m string) string {
		parts := interpolation.FindStringSubmatch(m)
		if parts[2] == "" {
			t.Errorf("%s needs a variable set; the stack should start as it is", m)
		}
		return parts[3]
	})
}

// readsOf returns every environment variable the worker's configuration
// reads, by watching it load: no list to keep in step by hand.
func readsOf(t *testing.T, args []string) map[string]bool {
	t.Helper()
	read := map[string]bool{}
	_, _ = config.LoadWorker(args, func(name string) string {
		read[name] = true
		return ""
	}, io.Discard)
	require.NotEmpty(t, read)
	return read
}

func TestComposeServices(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	require.Subset(t, slices.Collect(maps.Keys(c.Services)), []string{"redis", "worker", "sandbox"})

	t.Run("redis keeps the queue and never evicts it", func(t *testing.T) {
		r := c.Services["redis"]
		require.Regexp(t, `^redis:7(\.|$|-)`, r.Image)
		cmd := strings.Join(r.Command, " ")
		require.Contains(t, cmd, "--appendonly yes")
		require.Contains(t, cmd, "--maxmemory-policy noeviction")
		require.True(t, slices.ContainsFunc(r.Volumes, func(v string) bool { return strings.HasSuffix(v, ":/data") }),
			"redis needs a volume on /data for its AOF, got %v", r.Volumes)
	})
	t.Run("the worker waits for a healthy redis", func(t *testing.T) {
		require.Equal(t, "service_healthy", c.Services["worker"].DependsOn["redis"].Condition)
	})
	t.Run("the worker reads the sandbox's keys from the volume it writes", func(t *testing.T) {
		require.Contains(t, c.Services["sandbox"].Volumes, "sandbox-keys:/sandbox")
		require.Contains(t, c.Services["worker"].Volumes, "sandbox-keys:/sandbox:ro")
		require.Contains(t, c.Volumes, "sandbox-keys")
	})
}

func TestComposeWorkerEnvironmentIsWhatTheWorkerReads(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	for name, s := range c.Services {
		if s.Build == "" || len(s.Entrypoint) > 0 {
			continue // not the worker program
		}
		t.Run(name, func(t *testing.T) {
			reads := readsOf(t, s.Command)
			for v := range s.Environment {
				require.True(t, reads[v], "docker-compose.yml sets %s on %s, which the worker never reads", v, name)
			}
		})
	}
	w := c.Services["worker"]
	for _, name := range []string{"REDIS_URL", "WECHATPAY_BASE_URL", "WECHATPAY_MCHID", "WECHATPAY_MCH_CERT_SERIAL",
		"WECHATPAY_MCH_PRIVATE_KEY_FILE", "WECHATPAY_PUBLIC_KEY_ID", "WECHATPAY_PUBLIC_KEY_FILE",
		"WECHATPAY_PLATFORM_CERT_FILE", "WECHATPAY_APIV3_KEY_FILE"} {
		require.Contains(t, w.Environment, name, "the worker's %s must be settable from .env", name)
	}
}

// TestComposeDashboard starts as compose would start it, given the login
// .env must hold, and serves only what it reads.
func TestComposeDashboard(t *testing.T) {
	t.Parallel()
	d, ok := loadCompose(t).Services["dashboard"]
	require.True(t, ok, "docker-compose.yml has no dashboard service")
	require.Contains(t, d.Ports, "127.0.0.1:8080:8080")
	require.Equal(t, "service_healthy", d.DependsOn["redis"].Condition)
	env := map[string]string{"DASHBOARD_USER": "ops", "DASHBOARD_PASSWORD": "secret"} // from .env
	for name, v := range d.Environment {
		if _, set := env[name]; !set {
			env[name] = resolve(t, v)
		}
	}
	cfg, err := config.LoadWorker(d.Command, func(name string) string { return env[name] }, io.Discard)
	require.NoError(t, err)
	require.True(t, cfg.DashboardOnly)
	require.Equal(t, "0.0.0.0:8080", cfg.Dashboard)
}

// TestComposeWorkerDefaultsMatchTheSandbox runs the sandbox with the
// compose file's own command, then loads the worker's configuration from
// the compose file's environment (the sandbox volume at its place) and
// imports a member through it: the stack's two halves agree.
func TestComposeWorkerDefaultsMatchTheSandbox(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	dir := t.TempDir()
	args := slices.Clone(c.Services["sandbox"].Command)
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "--addr="):
			args[i] = "--addr=127.0.0.1:0"
		case strings.HasPrefix(a, "--dir="):
			args[i] = "--dir=" + dir
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- sandbox.Run(ctx, args, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				url, _, _ := strings.Cut(v, " ")
				listening <- url
			}
		}
	}()
	var sandboxURL string
	select {
	case sandboxURL = <-listening:
	case err := <-done:
		t.Fatalf("sandbox ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("sandbox did not listen within 30s")
	}

	t.Run("the health check finds it", func(t *testing.T) {
		test := c.Services["sandbox"].Healthcheck.Test
		require.GreaterOrEqual(t, len(test), 3)
		require.Equal(t, []string{"CMD", "/usr/local/bin/wechatpay-sandbox"}, test[:2])
		args := slices.Clone(test[2:])
		for i, a := range args {
			if strings.HasPrefix(a, "--addr=") {
				args[i] = "--addr=" + strings.TrimPrefix(sandboxURL, "http://")
			}
		}
		require.NoError(t, sandbox.Run(t.Context(), args, io.Discard, io.Discard))
	})

	w := c.Services["worker"]
	env := map[string]string{}
	for name, v := range w.Environment {
		env[name] = strings.ReplaceAll(resolve(t, v), "/sandbox/", dir+"/")
	}
	cfg, err := config.LoadWorker(w.Command, func(name string) string { return env[name] }, io.Discard)
	require.NoError(t, err, "the worker's configuration in docker-compose.yml")
	require.Equal(t, "http://sandbox:8090", cfg.WeChat.BaseURL)

	written, err := wechatpaytest.ReadEnvFile(filepath.Join(dir, wechatpaytest.FileEnv))
	require.NoError(t, err)
	for _, name := range []string{"WECHATPAY_BASE_URL", "WECHATPAY_MCHID", "WECHATPAY_MCH_CERT_SERIAL", "WECHATPAY_PUBLIC_KEY_ID"} {
		require.Equal(t, written[name], env[name], "%s: the worker's default and the sandbox's env file differ", name)
	}

	// Inside compose the worker reaches the sandbox as sandbox:8090; here,
	// on the port it listens on.
	cfg.WeChat.BaseURL = sandboxURL
	client, err := wechatpay.NewClient(t.Context(), cfg.WeChat)
	require.NoError(t, err)
	defer client.Close()
	res, err := client.Import(t.Context(), wechatpay.ImportRequest{
		CardID: "pbLatjvWOibDc5-TBnbUk1pD12o0", OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", OutRequestNo: "compose-1",
	})
	if err != nil {
		// --transient-share may pick this number's first attempt; the
		// retry under the same out_request_no imports.
		res, err = client.Import(t.Context(), wechatpay.ImportRequest{
			CardID: "pbLatjvWOibDc5-TBnbUk1pD12o0", OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", OutRequestNo: "compose-1",
		})
	}
	require.NoError(t, err)
	require.Regexp(t, `^\d{12}$`, res.Code)
}

// TestDockerfileBuildsWhatComposeRuns checks, without Docker, that every
// program the stack starts is built into the image from a command that
// exists, and that what the Dockerfile copies is there.
func TestDockerfileBuildsWhatComposeRuns(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	require.NoError(t, err)
	dockerfile := string(raw)
	built := map[string]bool{}
	for _, m := range regexp.MustCompile(`\./cmd/([a-z0-9-]+)`).FindAllStringSubmatch(dockerfile, -1) {
		built[m[1]] = true
		require.DirExists(t, filepath.Join(repoRoot, "cmd", m[1]))
	}
	for _, m := range regexp.MustCompile(`(?m)^COPY ([^-\n][^\n]*) \S+$`).FindAllStringSubmatch(dockerfile, -1) {
		for _, src := range strings.Fields(m[1]) {
			if src != "." {
				require.FileExists(t, filepath.Join(repoRoot, src), "Dockerfile copies %s", src)
			}
		}
	}
	entry := regexp.MustCompile(`(?m)^ENTRYPOINT \["/usr/local/bin/([a-z0-9-]+)"\]`).FindStringSubmatch(dockerfile)
	require.NotNil(t, entry, "Dockerfile has no ENTRYPOINT")
	require.Equal(t, "worker", entry[1])

	for name, s := range loadCompose(t).Services {
		if s.Build == "" {
			continue
		}
		require.Equal(t, ".", s.Build, "%s builds the repository's Dockerfile", name)
		program := entry[1]
		if len(s.Entrypoint) > 0 {
			program = strings.TrimPrefix(s.Entrypoint[0], "/usr/local/bin/")
		}
		require.True(t, built[program], "service %s runs %s, which the Dockerfile does not build", name, program)
	}
}

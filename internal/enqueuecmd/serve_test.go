package enqueuecmd

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/tasks"
)

func TestServeRefusesToStart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		wantStderr string
	}{
		{name: "one-byte token off loopback", env: map[string]string{"INTAKE_TOKEN": "x"}, args: []string{"--addr", "0.0.0.0:0"}, wantStderr: "enqueue: INTAKE_TOKEN: shorter than 16 bytes; on an address other hosts can reach, use a long random token (e.g. openssl rand -hex 32); refusing to listen on 0.0.0.0:0\n"},
		{name: "white-space token", env: map[string]string{"INTAKE_TOKEN": " \t"}, wantStderr: "enqueue: INTAKE_TOKEN: holds only white space\n"},
		{name: "allowed host with a port", env: map[string]string{"INTAKE_ALLOWED_HOSTS": "intake.example.com, proxy:8080"}, wantStderr: "enqueue: INTAKE_ALLOWED_HOSTS: entry 2 is not a host name (a name such as dashboard.example.com, without scheme, port or path)\n"},
		{name: "no token off loopback", args: []string{"--addr", "0.0.0.0:0"}, wantStderr: "enqueue: INTAKE_TOKEN: not set; without a token the intake only listens on a loopback address (127.0.0.1, ::1, localhost); refusing to listen on 0.0.0.0:0\n"},
		{name: "no token on every interface", args: []string{"--addr", ":8080"}, wantStderr: "enqueue: INTAKE_TOKEN: not set; without a token the intake only listens on a loopback address (127.0.0.1, ::1, localhost); refusing to listen on :8080\n"},
		{name: "bad limit", args: []string{"--max-members", "0"}, wantStderr: "enqueue: --max-members: must be positive\n"},
		{name: "arguments", args: []string{"members.csv"}, wantStderr: "enqueue: serve: takes no arguments, got 1\n"},
		{name: "bad log level", args: []string{"--log-level", "loud"}, wantStderr: "enqueue: --log-level: log level: unknown level \"loud\" (debug, info, warn, error)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			for k, v := range tt.env {
				b.env[k] = v
			}
			got := b.run(t, nil, append([]string{"serve"}, tt.args...)...)
			require.Equal(t, result{code: 1, stderr: tt.wantStderr}, got)
		})
	}
}

func TestServe(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// Pasted with white space around it, which the intake ignores as it
	// ignores white space around the token a request carries.
	b.env["INTAKE_TOKEN"] = " s3cret-intake-token\n"
	b.env["INTAKE_ALLOWED_HOSTS"] = "intake.example.com"
	ctx, cancel := context.WithCancel(testkit.Context(t))
	stdout := &testkit.Buffer{}
	var stderr strings.Builder
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"serve", "--queue", b.queue, "--addr", "127.0.0.1:0"}, func(k string) string { return b.env[k] }, nil, stdout, &stderr)
	}()

	// The first log line says where it listens.
	var addr string
	require.Eventually(t, func() bool {
		sc := bufio.NewScanner(strings.NewReader(stdout.String()))
		for sc.Scan() {
			var line struct{ Message, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "intake listening" {
				addr = line.Addr
				return true
			}
		}
		return false
	}, 20*time.Second, 10*time.Millisecond)

	post := func(auth string, host ...string) (int, string) {
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/imports", strings.NewReader(
			`[{"card_id":"pLcard0001","openid":"oUser0000000001","out_request_no":"order-1"},{"card_id":"pLcard0001","out_request_no":"order-2"}]`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if len(host) > 0 {
			req.Host = host[0]
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	status, body := post("")
	require.Equal(t, http.StatusUnauthorized, status, body)
	status, _ = post("Bearer wrong")
	require.Equal(t, http.StatusUnauthorized, status)
	require.Empty(t, b.queued(t))

	status, body = post("Bearer s3cret-intake-token", "rebind.evil.example")
	require.Equal(t, http.StatusForbidden, status, body)
	require.Empty(t, b.queued(t))

	status, body = post("Bearer s3cret-intake-token", "intake.example.com")
	require.Equal(t, http.StatusOK, status, body)
	require.Regexp(t, `^\{"run":"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}",`, body, "the batch's run comes first")
	require.JSONEq(t, `{"enqueued":1,"duplicates":0,"invalid":[{"index":1,"error":"openid: is required"}]}`, regexp.MustCompile(`"run":"[^"]*",`).ReplaceAllString(body, ""))
	require.Equal(t, map[string]tasks.Payload{"order-1": member("oUser0000000001", "order-1")}, b.queued(t))

	cancel()
	select {
	case code := <-done:
		require.Equal(t, 0, code, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	logs := stdout.String()
	require.Contains(t, logs, `"http_status":401`)
	require.Contains(t, logs, `"path":"/v1/imports","http_status":200`)
	require.NotContains(t, logs, "oUser0000000001")
	require.NotContains(t, logs, "s3cret-intake-token")
}

package intake_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/intake"
	"github.com/cardimport/cardimport/tasks"
)

// TestImportsRefusesBrowsers: an intake without a token (its loopback
// default) takes members only from programs on this host. A web page in
// the operator's browser can neither post a form or text/plain to it from
// another site, nor reach it under a name its owner rebound to 127.0.0.1;
// only JSON content types are taken at all.
func TestImportsRefusesBrowsers(t *testing.T) {
	t.Parallel()
	b := setup(t, intake.Config{AllowedHosts: []string{"intake.example.com"}})
	port := b.url[strings.LastIndexByte(b.url, ':')+1:]
	tests := []struct {
		name       string
		headers    map[string]string
		host       string
		wantStatus int
		wantError  string
	}{
		{
			name:       "cross-site text/plain form post",
			headers:    map[string]string{"Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
			wantStatus: http.StatusForbidden,
			wantError:  "cross-origin request refused: a page of another site may not change anything here",
		},
		{
			name:       "cross-site JSON from a browser without Sec-Fetch-Site",
			headers:    map[string]string{"Content-Type": "application/json", "Origin": "https://evil.example"},
			wantStatus: http.StatusForbidden,
			wantError:  "cross-origin request refused: a page of another site may not change anything here",
		},
		{
			name:       "DNS-rebound page",
			headers:    map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"},
			host:       "rebind.evil.example:" + port,
			wantStatus: http.StatusForbidden,
			wantError:  "the Host header names a host this server does not answer to; add the name to INTAKE_ALLOWED_HOSTS if it is yours",
		},
		{
			name:       "text/plain",
			headers:    map[string]string{"Content-Type": "text/plain"},
			wantStatus: http.StatusUnsupportedMediaType,
			wantError:  "Content-Type must be application/json (a JSON array of members) or application/x-ndjson (JSON lines)",
		},
		{
			name:       "form",
			headers:    map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
			wantStatus: http.StatusUnsupportedMediaType,
			wantError:  "Content-Type must be application/json (a JSON array of members) or application/x-ndjson (JSON lines)",
		},
		{
			name:       "no content type",
			headers:    map[string]string{},
			wantStatus: http.StatusUnsupportedMediaType,
			wantError:  "Content-Type must be application/json (a JSON array of members) or application/x-ndjson (JSON lines)",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, b.url+"/v1/imports", strings.NewReader("["+jsonOf(m(i))+"]"))
			require.NoError(t, err)
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			if tt.host != "" {
				req.Host = tt.host
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, tt.wantStatus, resp.StatusCode)
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			var got map[string]any
			require.NoError(t, jsonDecode(resp, &got))
			require.Equal(t, map[string]any{"error": tt.wantError}, got)
		})
	}
	require.Empty(t, b.pending(t), "no browser request enqueued anybody")

	// The same request from the intake's own origin, from a program, and
	// under a name the operator allowed, is taken.
	for i, h := range []struct{ host, site string }{{"", "same-origin"}, {"", ""}, {"intake.example.com", ""}, {"localhost:" + port, ""}} {
		req, err := http.NewRequest(http.MethodPost, b.url+"/v1/imports", strings.NewReader("["+jsonOf(m(100+i))+"]"))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		if h.site != "" {
			req.Header.Set("Sec-Fetch-Site", h.site)
		}
		if h.host != "" {
			req.Host = h.host
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "%+v", h)
	}
	require.Len(t, b.pending(t), 4)

	// A rebound page cannot read the health check either.
	req, err := http.NewRequest(http.MethodGet, b.url+"/healthz", nil)
	require.NoError(t, err)
	req.Host = "rebind.evil.example"
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
}

// TestImportsJSONThatChangesWhatItSays: a member whose openid holds a lone
// surrogate escape, or that gives a key twice, is invalid and named, in an
// array as in JSON lines; encoding/json would have enqueued U+FFFD or the
// last value.
func TestImportsJSONThatChangesWhatItSays(t *testing.T) {
	t.Parallel()
	members := []string{
		`{"card_id":"pLcard0001","openid":"oUserSecret\ud800","out_request_no":"order-1"}`,
		`{"card_id":"pLcard0001","openid":"oUserSecret0002","openid":"oUserSecret0003","out_request_no":"order-2"}`,
		jsonOf(m(4)),
	}
	want := []any{
		map[string]any{"index": 0.0, "error": `openid: has an unpaired UTF-16 surrogate escape (\ud800)`},
		map[string]any{"index": 1.0, "error": "openid: is given more than once"},
	}
	for _, tt := range []struct{ contentType, body string }{
		{"application/json", "[" + strings.Join(members, ",") + "]"},
		{"application/x-ndjson", strings.Join(members, "\n")},
	} {
		t.Run(tt.contentType, func(t *testing.T) {
			t.Parallel()
			b := setup(t, intake.Config{Token: token})
			status, got := b.post(t, tt.body, auth("Content-Type", tt.contentType))
			require.Equal(t, http.StatusOK, status)
			require.Equal(t, map[string]any{"enqueued": 1.0, "duplicates": 0.0, "invalid": want}, got)
			require.Equal(t, map[string]tasks.Payload{"order-4": m(4)}, b.pending(t))
		})
	}
}

// TestTokenWhiteSpace: white space around INTAKE_TOKEN, as a pasted value
// often has, is ignored like the white space around the request's token,
// so it does not lock every client out.
func TestTokenWhiteSpace(t *testing.T) {
	t.Parallel()
	b := setup(t, intake.Config{Token: " " + token + "\n"})
	for i, header := range []string{"Bearer " + token, "Bearer  " + token + " "} {
		status, got := b.post(t, "["+jsonOf(m(i))+"]", auth("Authorization", header))
		require.Equal(t, http.StatusOK, status, "%q: %v", header, got)
	}
	status, _ := b.post(t, "["+jsonOf(m(9))+"]", auth("Authorization", "Bearer "+token+"x"))
	require.Equal(t, http.StatusUnauthorized, status)
}

// TestServeRefusesShortTokenOnNonLoopbackListener: a token that passed
// New on a loopback Addr does not make a listener on every interface safe.
func TestServeRefusesShortTokenOnNonLoopbackListener(t *testing.T) {
	t.Parallel()
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = client.Close() })
	producer, err := tasks.NewProducer(client)
	require.NoError(t, err)
	srv, err := intake.New(context.Background(), intake.Config{Addr: "127.0.0.1:0", Token: "x", Producer: producer, Store: newStore(t, asynq.RedisClientOpt{Addr: "127.0.0.1:1"}, tasks.DefaultQueue)})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	require.NoError(t, err)
	// Were it to serve, it would return nil once the context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.ErrorIs(t, srv.Serve(ctx, ln), intake.ErrShortToken)
}

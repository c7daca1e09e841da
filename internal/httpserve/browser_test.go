package httpserve_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/httpserve"
)

func TestBrowserGuard(t *testing.T) {
	t.Parallel()
	h := httpserve.BrowserGuard{
		ListenAddr:      "Intake.Internal:8080",
		AllowedHosts:    []string{"dashboard.example.com"},
		AllowedHostsVar: "TEST_ALLOWED_HOSTS",
	}.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	tests := []struct {
		name   string
		method string
		host   string
		header map[string]string
		want   int
	}{
		{name: "loopback IP", host: "127.0.0.1:8080", want: http.StatusNoContent},
		{name: "IPv6 loopback", host: "[::1]:8080", want: http.StatusNoContent},
		{name: "any IP address", host: "192.0.2.7", want: http.StatusNoContent},
		{name: "localhost", host: "localhost:8080", want: http.StatusNoContent},
		{name: "localhost, fully qualified", host: "LocalHost.", want: http.StatusNoContent},
		{name: "the name it listens on", host: "intake.internal:8080", want: http.StatusNoContent},
		{name: "an allowed name", host: "DASHBOARD.example.com", want: http.StatusNoContent},
		{name: "no Host (HTTP/1.0)", host: "", want: http.StatusNoContent},
		{name: "a rebound name", host: "rebind.evil.example:8080", want: http.StatusForbidden},
		{name: "a name ending in localhost", host: "evil-localhost", want: http.StatusForbidden},
		{name: "a subdomain of an allowed name", host: "x.dashboard.example.com", want: http.StatusForbidden},
		{name: "a name that looks like an IP", host: "127.0.0.1.nip.io", want: http.StatusForbidden},
		{name: "a rebound name, read only", method: http.MethodGet, host: "rebind.evil.example", want: http.StatusForbidden},
		{name: "cross-site post", host: "127.0.0.1:8080", header: map[string]string{"Sec-Fetch-Site": "cross-site"}, want: http.StatusForbidden},
		{name: "same-site post from another port", host: "127.0.0.1:8080", header: map[string]string{"Sec-Fetch-Site": "same-site"}, want: http.StatusForbidden},
		{name: "post from another origin", host: "127.0.0.1:8080", header: map[string]string{"Origin": "http://evil.example"}, want: http.StatusForbidden},
		{name: "cross-site read", method: http.MethodGet, host: "127.0.0.1:8080", header: map[string]string{"Sec-Fetch-Site": "cross-site"}, want: http.StatusNoContent},
		{name: "same-origin post", host: "127.0.0.1:8080", header: map[string]string{"Sec-Fetch-Site": "same-origin"}, want: http.StatusNoContent},
		{name: "post from its own origin", host: "127.0.0.1:8080", header: map[string]string{"Origin": "http://127.0.0.1:8080"}, want: http.StatusNoContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			req := httptest.NewRequest(method, "/", nil)
			req.Host = tt.host
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tt.want, rec.Code, rec.Body.String())
			require.NotContains(t, rec.Body.String(), "evil", "the refusal does not echo the request")
		})
	}
}

func TestParseHosts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		list    string
		want    []string
		wantErr string
	}{
		{list: ""},
		{list: " , "},
		{list: "Dashboard.Example.com., ops_host, 10.0.0.5, [::1]", want: []string{"dashboard.example.com", "ops_host", "10.0.0.5", "::1"}},
		{list: "dashboard.example.com:8080", wantErr: "V: entry 1 is not a host name (a name such as dashboard.example.com, without scheme, port or path)"},
		{list: "a.example, https://b.example", wantErr: "V: entry 2 is not a host name (a name such as dashboard.example.com, without scheme, port or path)"},
		{list: "*.example.com", wantErr: "V: entry 1 is not a host name (a name such as dashboard.example.com, without scheme, port or path)"},
		{list: "a..b", wantErr: "V: entry 1 is not a host name (a name such as dashboard.example.com, without scheme, port or path)"},
		{list: "example.com/path", wantErr: "V: entry 1 is not a host name (a name such as dashboard.example.com, without scheme, port or path)"},
	}
	for _, tt := range tests {
		t.Run(tt.list, func(t *testing.T) {
			t.Parallel()
			got, err := httpserve.ParseHosts("V", tt.list)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

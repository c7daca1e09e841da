package httpserve

import (
	"fmt"
	"net"
	"net/http"
	"strings"
)

// BrowserGuard keeps web pages open in a browser on this host (or one that
// reaches it) from driving a server of ours: the dashboard, which may run
// without a login on loopback, and the HTTP intake, which may run without
// a token there. Both checks matter only for browsers; other clients pass.
//
//   - DNS rebinding: a page at http://rebind.evil.example:8080/ whose name
//     its owner points at 127.0.0.1 after it loaded is, to the browser, the
//     same origin as our server, so cross-origin rules let it read and
//     change everything. Its requests carry "Host: rebind.evil.example",
//     though, so only the names the server answers to are let through: IP
//     addresses (a browser sends one only for a page loaded from that
//     address), "localhost", the name the server listens on, and the names
//     the operator allows (behind a proxy, the name users type).
//   - Cross-site requests: a page of another site may still send a form or
//     a fetch without reading the answer, with the dashboard's login
//     attached by the browser. http.CrossOriginProtection refuses every
//     unsafe request (POST, DELETE…) that Sec-Fetch-Site or Origin shows
//     came from another origin.
type BrowserGuard struct {
	// ListenAddr is the HOST:PORT the server listens on; a name there is
	// one the server answers to.
	ListenAddr string
	// AllowedHosts are further names the server answers to, as
	// ParseHosts returns them. Defaults to none.
	AllowedHosts []string
	// AllowedHostsVar names the variable that sets AllowedHosts, for the
	// refusal's message.
	AllowedHostsVar string
	// Deny writes a refusal. Defaults to a plain-text http.Error.
	Deny func(w http.ResponseWriter, status int, msg string)
}

// Handler returns next behind the guard.
func (g BrowserGuard) Handler(next http.Handler) http.Handler {
	deny := g.Deny
	if deny == nil {
		deny = func(w http.ResponseWriter, status int, msg string) { http.Error(w, msg, status) }
	}
	allowed := map[string]bool{"localhost": true}
	if host, _, err := net.SplitHostPort(g.ListenAddr); err == nil && host != "" {
		allowed[canonicalHost(host)] = true
	}
	for _, h := range g.AllowedHosts {
		allowed[canonicalHost(h)] = true
	}
	// The message does not repeat the Host header: it is the caller's to
	// fill and the answer is no place for it.
	hostMsg := "the Host header names a host this server does not answer to"
	if g.AllowedHostsVar != "" {
		hostMsg += "; add the name to " + g.AllowedHostsVar + " if it is yours"
	}
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		deny(w, http.StatusForbidden, "cross-origin request refused: a page of another site may not change anything here")
	}))
	guarded := cop.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hostAllowed(r.Host, allowed) {
			deny(w, http.StatusForbidden, hostMsg)
			return
		}
		guarded.ServeHTTP(w, r)
	})
}

// hostAllowed says whether a Host header names the server. An empty Host
// (HTTP/1.0) comes from no browser and passes.
func hostAllowed(hostport string, allowed map[string]bool) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = canonicalHost(host)
	if host == "" || net.ParseIP(host) != nil {
		return true
	}
	return allowed[host]
}

// canonicalHost lowercases a host name and drops the brackets of an IPv6
// address and the dot that may end a fully qualified name.
func canonicalHost(host string) string {
	return strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
}

// ParseHosts reads a comma-separated list of host names, such as
// DASHBOARD_ALLOWED_HOSTS or INTAKE_ALLOWED_HOSTS. Each must be a bare name
// or IP address (no scheme, port, path or wildcard); an error names
// variable, not the value, which is the operator's.
func ParseHosts(variable, list string) ([]string, error) {
	var hosts []string
	for i, h := range strings.Split(list, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if !isHostName(h) && net.ParseIP(strings.Trim(h, "[]")) == nil {
			return nil, fmt.Errorf("%s: entry %d is not a host name (a name such as dashboard.example.com, without scheme, port or path)", variable, i+1)
		}
		hosts = append(hosts, canonicalHost(h))
	}
	return hosts, nil
}

// isHostName says whether s is a DNS name: labels of letters, digits, '-'
// and '_', separated by dots, with an optional final dot.
func isHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

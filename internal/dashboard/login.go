package dashboard

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/cardimport/cardimport/internal/httpserve"
)

// CheckLogin applies the login rule to a dashboard address: a dashboard
// reachable from other hosts shows every queued member, so it needs
// DASHBOARD_USER and DASHBOARD_PASSWORD; one on a loopback address may run
// without them. A login given by halves is refused wherever it listens, as
// it is surely a mistake.
func CheckLogin(addr, user, password string) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--dashboard: %q is not HOST:PORT", addr)
	}
	var errs []error
	switch {
	case user == "" && password == "":
		if !httpserve.IsLoopback(host) {
			errs = append(errs,
				errors.New("DASHBOARD_USER: required when --dashboard is not a loopback address"),
				errors.New("DASHBOARD_PASSWORD: required when --dashboard is not a loopback address"))
		}
	case user == "":
		errs = append(errs, errors.New("DASHBOARD_USER: required when DASHBOARD_PASSWORD is set"))
	case password == "":
		errs = append(errs, errors.New("DASHBOARD_PASSWORD: required when DASHBOARD_USER is set"))
	case strings.Contains(user, ":"):
		// Basic authentication cannot carry a user name with a colon.
		errs = append(errs, errors.New("DASHBOARD_USER: must not contain ':'"))
	}
	return errors.Join(errs...)
}

// requireLogin lets through only requests with the configured basic login.
// Both halves are compared, in constant time (httpserve.Secret), whatever
// the other's result, so that the check takes the same time whatever the
// length or content of the guess.
func requireLogin(user, password, realm string, next http.Handler) http.Handler {
	wantUser, wantPassword := httpserve.NewSecret(user), httpserve.NewSecret(password)
	challenge := fmt.Sprintf("Basic realm=%q, charset=\"UTF-8\"", realm)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		userOK := wantUser.Matches(u)
		passwordOK := wantPassword.Matches(p)
		if !ok || !userOK || !passwordOK {
			w.Header().Set("WWW-Authenticate", challenge)
			http.Error(w, "login required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

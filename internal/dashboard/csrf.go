package dashboard

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
)

// The Runs page's Replay forms carry a token that must match a cookie of
// the browser's (a double-submit token). The dashboard's browser guard
// already refuses a POST that Sec-Fetch-Site or Origin shows came from
// another site; the token also holds for a browser that sends neither,
// and needs no state on the server, so it holds across dashboards behind
// one proxy and across restarts. A page of another site can neither read
// the cookie nor set it for this origin.
const (
	csrfCookie = "cardimport_csrf"
	csrfField  = "csrf"
	csrfBytes  = 32
)

// csrfToken returns the browser's token, and gives it one (a cookie on
// path) when it has none.
func csrfToken(w http.ResponseWriter, r *http.Request, path string) string {
	if c, err := r.Cookie(csrfCookie); err == nil && wellFormedToken(c.Value) {
		return c.Value
	}
	b := make([]byte, csrfBytes)
	_, _ = rand.Read(b)
	token := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{
		Name: csrfCookie, Value: token, Path: path,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	return token
}

// csrfValid says whether a form's token matches the browser's cookie.
func csrfValid(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || !wellFormedToken(c.Value) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostForm.Get(csrfField))) == 1
}

func wellFormedToken(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == csrfBytes
}

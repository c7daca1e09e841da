package dashboard

import (
	"bytes"
	"cmp"
	"html"
	"net/http"
	"strings"
)

// withRunsLink serves asynqmon with a link to the Runs page in its page.
// asynqmon's UI is a prebuilt single-page app with no place for a link of
// ours; its HTML shell, which it serves for "/" and every path of the app,
// can carry one all the same, fixed in a corner outside the app's tree.
// API answers and static files pass through untouched.
func withRunsLink(mon http.Handler, href string) http.Handler {
	link := []byte(`<a id="cardimport-runs-link" href="` + html.EscapeString(href) + `" title="Runs, refusals and replays of the import queue" ` +
		`style="position:fixed;right:20px;bottom:20px;z-index:1250;padding:10px 18px;border-radius:22px;` +
		`background:#1f3b57;color:#fff;font:600 15px/1.2 system-ui,sans-serif;text-decoration:none;` +
		`box-shadow:0 2px 8px rgba(0,0,0,.3)">Runs &amp; refusals &rsaquo;</a>`)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || strings.Contains(r.URL.Path, "/api/") || strings.Contains(r.URL.Path, "/static/") {
			mon.ServeHTTP(w, r)
			return
		}
		buf := &bufferedResponse{header: http.Header{}}
		mon.ServeHTTP(buf, r)
		body := buf.body.Bytes()
		ct := buf.header.Get("Content-Type")
		if ct == "" {
			ct = http.DetectContentType(body)
			buf.header.Set("Content-Type", ct)
		}
		if i := bytes.LastIndex(body, []byte("</body>")); i >= 0 && strings.HasPrefix(ct, "text/html") {
			body = append(body[:i:i], append(link, body[i:]...)...)
		}
		for k, v := range buf.header {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(cmp.Or(buf.status, http.StatusOK))
		_, _ = w.Write(body)
	})
}

// bufferedResponse keeps an answer of asynqmon's until the link is in.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	return b.body.Write(p)
}

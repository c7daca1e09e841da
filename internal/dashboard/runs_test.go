package dashboard_test

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/dashboard"
	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/internal/logging"
	"github.com/cardimport/cardimport/internal/redisconn"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

// browser is a client of the dashboard that keeps cookies and does not
// follow redirects, as a test reads them.
type browser struct {
	b      *bundle
	client *http.Client
}

func (b *bundle) browser(t *testing.T) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &browser{b: b, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request with the login and returns the answer and its body.
func (br *browser) do(t *testing.T, method, path string, form url.Values, header ...string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, br.b.url+path, body)
	require.NoError(t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	if br.b.cfg.User != "" {
		req.SetBasicAuth(br.b.cfg.User, br.b.cfg.Password)
	}
	res, err := br.client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, string(data)
}

func (br *browser) get(t *testing.T, path string) string {
	t.Helper()
	res, body := br.do(t, http.MethodGet, path, nil)
	require.Equal(t, http.StatusOK, res.StatusCode, "GET %s: %s", path, body)
	require.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"))
	require.Equal(t, "no-store", res.Header.Get("Cache-Control"))
	return body
}

var (
	tileRE    = regexp.MustCompile(`<div class="tile[^"]*"><small>([^<]+)</small><b>([^<]+)</b>`)
	groupRE   = regexp.MustCompile(`(?s)<span class="code">([^<]+)</span>.*?<td class="msg">([^<]*)</td>\s*<td class="num"><b>([^<]+)</b>`)
	replayRE  = regexp.MustCompile(`name="csrf" value="([^"]*)">\s*<input type="hidden" name="group" value="([^"]+)">\s*<button class="replay" type="submit" data-group="([^"]+)"`)
	flashRE   = regexp.MustCompile(`(?s)<div class="flash[^"]*" role="status">(.*?)</div>`)
	stripTags = regexp.MustCompile(`<[^>]+>`)
)

// tiles reads a run page's counts.
func tiles(page string) map[string]string {
	m := map[string]string{}
	for _, x := range tileRE.FindAllStringSubmatch(page, -1) {
		m[x[1]] = x[2]
	}
	return m
}

// groups reads a run page's refusal groups: code → members.
func groups(page string) map[string]string {
	m := map[string]string{}
	for _, x := range groupRE.FindAllStringSubmatch(page, -1) {
		m[x[1]] = x[3]
	}
	return m
}

// replayForms reads a run page's Replay forms: code → (token, group key).
func replayForms(page string) map[string][2]string {
	m := map[string][2]string{}
	for _, x := range replayRE.FindAllStringSubmatch(page, -1) {
		m[x[3]] = [2]string{x[1], x[2]}
	}
	return m
}

func flashOf(page string) string {
	m := flashRE.FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return html.UnescapeString(stripTags.ReplaceAllString(m[1], ""))
}

// TestRunsPage drives the Runs page over HTTP against a run imported
// through a real worker: the list's and the run's counts, the refusal
// groups, a member's story, the link from asynqmon, and that no page
// shows an openid unmasked.
func TestRunsPage(t *testing.T) {
	t.Parallel()
	n := importNight(t)
	b := n.serve(t, dashboard.Config{User: "ops", Password: "correct horse"})
	br := b.browser(t)
	runPath := "/runs/" + n.run.ID

	t.Run("list", func(t *testing.T) {
		page := br.get(t, "/runs")
		require.Contains(t, page, `href="`+runPath+`"`)
		require.Contains(t, page, `<span class="state settled">settled</span>`)
		require.Contains(t, page, "100% finished")
		require.Contains(t, page, `href="/queues/`+b.queue+`"`, "links back to asynqmon")
		require.Equal(t, page, br.get(t, "/runs/"), "with or without the slash")
	})

	t.Run("run counts and refusal groups", func(t *testing.T) {
		page := br.get(t, runPath)
		require.Equal(t, map[string]string{
			"Enqueued": "21", "Imported": "12", "Already member": "2", "Refused": "7",
			"Waiting": "0", "Duplicates": "1", "Invalid": "1",
		}, tiles(page))
		require.Equal(t, map[string]string{"NO_AUTH": "3", "INVALID_REQUEST": "2", "NOT_FOUND": "1", "PARAM_ERROR": "1"}, groups(page))
		require.Contains(t, page, html.EscapeString(wechatpaytest.MessageNoTrade))
		require.Len(t, replayForms(page), 4, "a Replay button per group")
		for _, no := range n.refused["NO_AUTH"] {
			require.Contains(t, page, `href="/member?no=`+no+`"`, "examples link to the member's story")
		}
	})

	t.Run("member story", func(t *testing.T) {
		tests := []struct {
			name string
			no   string
			want []string
		}{
			{name: "refused", no: n.refused["NO_AUTH"][0], want: []string{
				`<span class="state archived">archived</span>`, "NO_AUTH", "permanent", "HTTP 403",
				logging.MaskOpenID(n.member[n.refused["NO_AUTH"][0]].OpenID), `href="` + runPath + `"`,
			}},
			{name: "refusal naming the member", no: n.refused["PARAM_ERROR"][0], want: []string{
				"PARAM_ERROR", "openid " + logging.MaskOpenID(n.member[n.refused["PARAM_ERROR"][0]].OpenID),
			}},
			{name: "imported", no: "1900000001-20261204-night0002", want: []string{
				`<span class="state completed">completed</span>`, "<b>imported</b>", "code",
				`href="/queues/` + b.queue + `/tasks/1900000001-20261204-night0002"`,
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				page := br.get(t, "/member?no="+url.QueryEscape(tt.no))
				for _, want := range tt.want {
					require.Contains(t, page, want)
				}
			})
		}
		res, page := br.do(t, http.MethodGet, "/member?no=1900000001-20261204-nobody", nil)
		require.Equal(t, http.StatusNotFound, res.StatusCode)
		require.Contains(t, page, "does not know this out_request_no")
		res, _ = br.do(t, http.MethodGet, "/runs/no-such-run", nil)
		require.Equal(t, http.StatusNotFound, res.StatusCode)
	})

	t.Run("linked from asynqmon", func(t *testing.T) {
		for _, path := range []string{"/", "/queues/" + b.queue} {
			res, page := br.do(t, http.MethodGet, path, nil)
			require.Equal(t, http.StatusOK, res.StatusCode, path)
			require.Contains(t, page, `<a id="cardimport-runs-link" href="/runs"`, path)
		}
		res, body := br.do(t, http.MethodGet, "/api/queues/"+b.queue, nil)
		require.Equal(t, http.StatusOK, res.StatusCode, body)
		require.NotContains(t, body, "cardimport-runs-link", "API answers are asynqmon's own")
	})

	t.Run("no openid unmasked", func(t *testing.T) {
		pages := []string{"/runs", runPath, "/member"}
		for no := range n.member {
			pages = append(pages, "/member?no="+url.QueryEscape(no))
		}
		masked := 0
		for _, path := range pages {
			res, page := br.do(t, http.MethodGet, path, nil)
			require.Contains(t, []int{http.StatusOK, http.StatusNotFound}, res.StatusCode, path)
			for _, o := range n.openids() {
				require.NotContains(t, page, o, "GET %s shows an openid", path)
				if strings.Contains(page, html.EscapeString(logging.MaskOpenID(o))) {
					masked++
				}
			}
		}
		require.GreaterOrEqual(t, masked, nightRefused, "every dead letter's story shows its openid masked")
	})

	t.Run("login required", func(t *testing.T) {
		for _, path := range []string{"/runs", runPath, "/member?no=" + n.refused["NO_AUTH"][0]} {
			res, err := http.Get(b.url + path)
			require.NoError(t, err)
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			require.Equal(t, http.StatusUnauthorized, res.StatusCode, path)
			require.NotContains(t, string(body), n.run.ID)
		}
	})

	// Last: it drops the run's index of its dead members and its mark,
	// as a run settled by a version before the index has neither. The page reads the
	// outcome stream instead and shows the same groups.
	t.Run("run settled before the index", func(t *testing.T) {
		before := br.get(t, runPath)
		rdb, err := redisconn.Client(n.r.Opt)
		require.NoError(t, err)
		defer rdb.Close()
		ctx := testkit.Context(t)
		dropped, err := rdb.Del(ctx, "cardimport:{"+b.queue+"}:run-dead:"+n.run.ID).Result()
		require.NoError(t, err)
		require.Equal(t, int64(1), dropped, "the run had an index")
		unmarked, err := rdb.HDel(ctx, "cardimport:{"+b.queue+"}:run:"+n.run.ID, "dead_index").Result()
		require.NoError(t, err)
		require.Equal(t, int64(1), unmarked, "the run was marked as indexed")
		after := br.get(t, runPath)
		require.Equal(t, groups(before), groups(after))
		require.Equal(t, replayForms(before), replayForms(after))
	})
}

// TestRunsPageReplay: a Replay press puts the group's members back in the
// queue as `enqueue dead replay` does, and the run's page says so; a
// second press skips them, in flight already. A press without the form's
// token, from another site or through a foreign Host is refused and
// changes nothing, and so is every press on a read-only dashboard, which
// shows no Replay button.
func TestRunsPageReplay(t *testing.T) {
	t.Parallel()
	n := importNight(t)
	b := n.serve(t, dashboard.Config{User: "ops", Password: "pw"})
	readOnly := n.serve(t, dashboard.Config{User: "ops", Password: "pw", ReadOnly: true})
	runPath := "/runs/" + n.run.ID
	noAuth := n.refused["NO_AUTH"]
	stillArchived := func(t *testing.T) {
		t.Helper()
		for _, no := range noAuth {
			require.Equal(t, asynq.TaskStateArchived, n.state(t, no), no)
		}
	}

	br := b.browser(t)
	forms := replayForms(br.get(t, runPath))
	require.Contains(t, forms, "NO_AUTH")
	token, group := forms["NO_AUTH"][0], forms["NO_AUTH"][1]

	t.Run("read-only", func(t *testing.T) {
		ro := readOnly.browser(t)
		page := ro.get(t, runPath)
		require.Empty(t, replayForms(page))
		require.NotContains(t, page, `method="post"`)
		require.Contains(t, page, "read-only")
		require.Equal(t, map[string]string{"NO_AUTH": "3", "INVALID_REQUEST": "2", "NOT_FOUND": "1", "PARAM_ERROR": "1"}, groups(page), "the refusals are shown all the same")
		// Even with a token of the other dashboard's, as a forged form
		// would carry.
		ro.client.Jar.SetCookies(mustURL(t, readOnly.url+"/runs"), br.client.Jar.Cookies(mustURL(t, b.url+"/runs")))
		res, body := ro.do(t, http.MethodPost, runPath+"/replay", url.Values{"csrf": {token}, "group": {group}})
		require.Equal(t, http.StatusMethodNotAllowed, res.StatusCode, body)
		require.Contains(t, body, "read-only")
		stillArchived(t)
	})

	t.Run("refused", func(t *testing.T) {
		tests := []struct {
			name   string
			form   url.Values
			header []string
			jar    bool // send the browser's cookie
			want   string
		}{
			{name: "no token", form: url.Values{"group": {group}}, jar: true, want: "stale or did not come from this dashboard"},
			{name: "wrong token", form: url.Values{"csrf": {strings.Repeat("A", len(token))}, "group": {group}}, jar: true, want: "stale or did not come from this dashboard"},
			{name: "token without its cookie", form: url.Values{"csrf": {token}, "group": {group}}, want: "stale or did not come from this dashboard"},
			{name: "cross-site", form: url.Values{"csrf": {token}, "group": {group}}, jar: true, header: []string{"Sec-Fetch-Site", "cross-site"}, want: "cross-origin request refused"},
			{name: "other origin", form: url.Values{"csrf": {token}, "group": {group}}, jar: true, header: []string{"Origin", "http://evil.example"}, want: "cross-origin request refused"},
			{name: "foreign Host", form: url.Values{"csrf": {token}, "group": {group}}, jar: true, header: []string{"Host", "rebind.evil.example"}, want: "the Host header names a host this server does not answer to"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := br
				if !tt.jar {
					c = b.browser(t)
				}
				res, body := c.do(t, http.MethodPost, runPath+"/replay", tt.form, tt.header...)
				require.Equal(t, http.StatusForbidden, res.StatusCode, body)
				require.Contains(t, body, tt.want)
				stillArchived(t)
			})
		}
	})

	t.Run("replay", func(t *testing.T) {
		res, body := br.do(t, http.MethodPost, runPath+"/replay", url.Values{"csrf": {token}, "group": {group}}, "Sec-Fetch-Site", "same-origin")
		require.Equal(t, http.StatusSeeOther, res.StatusCode, body)
		loc := res.Header.Get("Location")
		require.True(t, strings.HasPrefix(loc, runPath+"?"), loc)
		page := br.get(t, loc)
		require.Contains(t, flashOf(page), "Replay of NO_AUTH: replayed=3 skipped=0 failed=0")
		require.Contains(t, page, "3 back in the queue")
		require.NotContains(t, replayForms(page), "NO_AUTH", "nothing left to replay in the group")
		require.Contains(t, replayForms(page), "NOT_FOUND")

		store, err := deadletter.New(n.r.Opt, n.queue)
		require.NoError(t, err)
		defer store.Close()
		for _, no := range noAuth {
			require.Equal(t, asynq.TaskStatePending, n.state(t, no), "%s is back in the queue", no)
			rec, err := store.Get(t.Context(), no)
			require.NoError(t, err)
			require.Equal(t, deadletter.StateReplayed, rec.State)
		}
		pending, err := n.insp.ListPendingTasks(n.queue)
		require.NoError(t, err)
		var ids []string
		for _, ti := range pending {
			ids = append(ids, ti.ID)
		}
		slices.Sort(ids)
		require.Equal(t, noAuth, ids, "only that group went back")
		for _, code := range []string{"INVALID_REQUEST", "NOT_FOUND", "PARAM_ERROR"} {
			for _, no := range n.refused[code] {
				require.Equal(t, asynq.TaskStateArchived, n.state(t, no), no)
			}
		}

		// Pressed again (a second tab): they are in flight already.
		res, body = br.do(t, http.MethodPost, runPath+"/replay", url.Values{"csrf": {token}, "group": {group}})
		require.Equal(t, http.StatusSeeOther, res.StatusCode, body)
		require.Contains(t, flashOf(br.get(t, res.Header.Get("Location"))), "Replay of NO_AUTH: replayed=0 skipped=3 failed=0")
	})
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}

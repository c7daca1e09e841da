package intake_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/internal/intake"
	"github.com/cardimport/cardimport/results"
	"github.com/cardimport/cardimport/tasks"
)

// get asks the intake for path with the bearer token (or without, when
// token is ""), decoding the JSON answer into out.
func (b *testBundle) get(t *testing.T, path, bearer string, out any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.url+path, nil)
	require.NoError(t, err)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
	return resp.StatusCode
}

// TestImportsGoIntoARun: a batch goes into the run it names, the run's
// counts and its members' outcomes are read back over HTTP behind the
// token, a page at a time, and a member's own state too, openid masked.
func TestImportsGoIntoARun(t *testing.T) {
	t.Parallel()
	b := setup(t, intake.Config{Token: token})
	var body strings.Builder
	for i := range 5 {
		body.WriteString(jsonOf(m(i)) + "\n")
	}
	body.WriteString(`{"openid":"x"}` + "\n")
	resp := send(t, b.url+"", strings.NewReader(body.String()), auth("Content-Type", "application/x-ndjson"))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var first intake.Response
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&first))
	require.NoError(t, results.ValidateRunID(first.Run), "a new run when none is named")

	req, err := http.NewRequest(http.MethodPost, b.url+"/v1/imports?run=nightly-7", strings.NewReader(body.String()))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	var second intake.Response
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&second))
	resp.Body.Close()
	require.Equal(t, "nightly-7", second.Run)
	require.Equal(t, 5, second.Duplicates)

	var run results.Run
	require.Equal(t, http.StatusOK, b.get(t, "/v1/runs/"+first.Run, token, &run))
	require.Equal(t, int64(5), run.Enqueued)
	require.Equal(t, int64(1), run.Invalid)
	require.Equal(t, int64(5), run.Waiting)
	require.True(t, run.Closed)

	// The worker settles them.
	st := newStore(t, b.opt, b.queue)
	for i := range 5 {
		p := m(i)
		p.Run = first.Run
		r := tasks.Result{Outcome: tasks.OutcomeImported, Code: fmt.Sprintf("%012d", i)}
		if i == 4 {
			r = tasks.Result{Outcome: tasks.OutcomeDead, Reason: tasks.ReasonPermanent, HTTPStatus: 404, WeChatCode: "NOT_FOUND", Message: "卡券不存在 for " + p.OpenID}
		}
		require.NoError(t, st.Settle(context.Background(), p.OutRequestNo, p, r))
	}
	require.Equal(t, http.StatusOK, b.get(t, "/v1/runs/"+first.Run, token, &run))
	require.True(t, run.Settled())
	require.Equal(t, int64(4), run.Imported)
	require.Equal(t, int64(1), run.Dead)

	var seen []results.Event
	cursor := ""
	for pages := 0; pages < 5; pages++ {
		var page intake.ResultsPage
		require.Equal(t, http.StatusOK, b.get(t, "/v1/results?run="+first.Run+"&limit=2&after="+cursor, token, &page))
		seen = append(seen, page.Results...)
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	require.Len(t, seen, 5)
	require.Equal(t, "NOT_FOUND", seen[4].WeChatCode)
	require.NotContains(t, seen[4].Message, m(4).OpenID, "no openid in the outcomes")

	var status deadletter.Status
	require.Equal(t, http.StatusOK, b.get(t, "/v1/imports/"+m(4).OutRequestNo, token, &status))
	require.Equal(t, "dead", status.Outcome)
	require.Equal(t, first.Run, status.Run)
	var missing map[string]any
	require.Equal(t, http.StatusNotFound, b.get(t, "/v1/imports/order-404", token, &missing))
	require.Equal(t, http.StatusNotFound, b.get(t, "/v1/runs/no-such-run", token, &missing))
	require.Equal(t, http.StatusBadRequest, b.get(t, "/v1/results?limit=0", token, &missing))
	require.Equal(t, http.StatusBadRequest, b.get(t, "/v1/results?after=xyz", token, &missing))
	for _, path := range []string{"/v1/runs/" + first.Run, "/v1/results", "/v1/imports/" + m(1).OutRequestNo} {
		require.Equal(t, http.StatusUnauthorized, b.get(t, path, "", &missing), path)
	}
}

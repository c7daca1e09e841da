package enqueuecmd

import (
	"context"
	"encoding/csv"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/results"
	"github.com/cardimport/cardimport/tasks"
)

// finish settles a queued member as the worker's handler would.
func (b *testBundle) finish(t *testing.T, no string, r tasks.Result) {
	t.Helper()
	store, err := deadletter.New(b.redis.Opt, b.queue)
	require.NoError(t, err)
	defer store.Close()
	info, err := b.insp.GetTaskInfo(b.queue, no)
	require.NoError(t, err)
	p, err := tasks.DecodePayload(info.Payload)
	require.NoError(t, err)
	require.NoError(t, store.Settle(context.Background(), no, p, r))
}

// TestRunLine: enqueue one and file print the run their members went into
// just before the summary, a new sortable ID by default or the one --run
// names, and the run counts what they did.
func TestRunLine(t *testing.T) {
	t.Parallel()
	b := setup(t)
	got := b.run(t, nil, "one", "--card-id", deadCard, "--openid", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "--out-request-no", "run-line-1")
	require.Equal(t, result{code: 0, stdout: "enqueued out_request_no=run-line-1\n"}, got)
	require.Regexp(t, `^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}$`, b.lastRun.Load())

	csvFile := "card_id,openid,out_request_no\n" + deadCard + ",oUpF8uMuAJO_M2pxb1Q9zNjWeS6p,run-line-2\n" + deadCard + ",,run-line-3\n" + deadCard + ",oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,run-line-1\n"
	got = b.run(t, strings.NewReader(csvFile), "file", "--run", "nightly-1", "-")
	require.Equal(t, result{code: 2, stdout: "enqueued=1 duplicates=1 invalid=1\n", stderr: "line 3: openid: is required\n"}, got)
	require.Equal(t, "nightly-1", b.lastRun.Load())
	info, err := b.insp.GetTaskInfo(b.queue, "run-line-2")
	require.NoError(t, err)
	p, err := tasks.DecodePayload(info.Payload)
	require.NoError(t, err)
	require.Equal(t, "nightly-1", p.Run, "the member's payload names its run")

	got = b.run(t, nil, "runs", "show", "nightly-1", "--json")
	require.Equal(t, 0, got.code, got.stderr)
	require.Contains(t, got.stdout, `"id":"nightly-1","enqueued":1,"duplicates":1,"invalid":1,"imported":0,"already_member":0,"dead":0,"waiting":1`)
	require.Contains(t, got.stdout, `"closed":true`)

	got = b.run(t, nil, "file", "--run", "bad run", "-")
	require.Equal(t, 1, got.code)
	require.Contains(t, got.stderr, "--invalid run id: run: must be 1 to 64 letters")
}

// TestRunsWaitAndExport: a run settles when its last member ends; runs wait
// prints the outcome line and exits 3 with members dead; the export has one
// line per member, a replayed dead member as imported.
func TestRunsWaitAndExport(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var rows strings.Builder
	rows.WriteString("card_id,openid,out_request_no\n")
	for i := range 4 {
		fmt.Fprintf(&rows, "%s,oUpF8uMuAJO_M2pxb1Q9zNjWe%03d,wait-%d\n", deadCard, i, i)
	}
	got := b.run(t, strings.NewReader(rows.String()), "file", "--run", "wait-run", "-")
	require.Equal(t, 0, got.code, got.stderr)
	b.finish(t, "wait-0", tasks.Result{Outcome: tasks.OutcomeImported, Code: "100000000000"})
	b.finish(t, "wait-1", tasks.Result{Outcome: tasks.OutcomeAlreadyMember, Code: "200000000000"})
	b.finish(t, "wait-2", tasks.Result{Outcome: tasks.OutcomeDead, Reason: tasks.ReasonPermanent, HTTPStatus: 403, WeChatCode: "NO_AUTH", Message: "商户无权限, really"})

	done := make(chan result, 1)
	go func() { done <- b.run(t, nil, "runs", "wait", "wait-run") }()
	b.finish(t, "wait-3", tasks.Result{Outcome: tasks.OutcomeImported, Code: "300000000000"})
	waited := <-done
	require.Equal(t, exitDead, waited.code, waited.stderr)
	lines := strings.Split(strings.TrimSpace(waited.stdout), "\n")
	require.Equal(t, "imported=2 already_member=1 dead=1", lines[len(lines)-1])
	require.Contains(t, waited.stderr, "run=wait-run enqueued=4", "piped: plain progress lines")

	// The dead member is replayed and imported.
	b.finish(t, "wait-2", tasks.Result{Outcome: tasks.OutcomeImported, Code: "400000000000"})
	got = b.run(t, nil, "runs", "wait", "wait-run")
	require.Equal(t, 0, got.code)
	require.Equal(t, "imported=3 already_member=1 dead=0\n", got.stdout)

	got = b.run(t, nil, "results", "export", "--run", "wait-run")
	require.Equal(t, 0, got.code, got.stderr)
	recs, err := csv.NewReader(strings.NewReader(got.stdout)).ReadAll()
	require.NoError(t, err)
	require.Equal(t, strings.Split(exportHeader, ","), recs[0])
	byNo := map[string][]string{}
	for _, r := range recs[1:] {
		require.NotContains(t, byNo, r[0], "one line per out_request_no")
		byNo[r[0]] = r
	}
	require.Len(t, byNo, 4)
	require.Equal(t, []string{"wait-2", deadCard, "wait-run", "imported", "400000000000", "", ""}, byNo["wait-2"][:7])
	require.Equal(t, "already_member", byNo["wait-1"][3])
	require.Equal(t, "exported=4\n", got.stderr)

	got = b.run(t, nil, "results", "export", "--format", "jsonl", "--since", "1h")
	require.Equal(t, 0, got.code)
	require.Equal(t, 4, strings.Count(got.stdout, "\n"))

	got = b.run(t, nil, "runs")
	require.Equal(t, 0, got.code)
	require.Contains(t, got.stdout, "wait-run")
	require.Regexp(t, `wait-run\s+\S+\s+4\s+0\s+0\s+3\s+1\s+0\s+0\s+\d{4}-`, got.stdout)
}

func TestResultsUsage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"results"}, "results: want export or follow"},
		{[]string{"results", "follow"}, "--group is required"},
		{[]string{"results", "export", "--format", "xml"}, "--format: want csv or jsonl"},
		{[]string{"results", "export", "--since", "yesterday"}, "--since: \"yesterday\" is neither"},
		{[]string{"runs", "show"}, "runs show: want one run ID"},
	} {
		got := b.run(t, nil, tt.args...)
		require.Equal(t, exitUsage, got.code, tt.args)
		require.Contains(t, got.stderr, tt.want)
	}
	_ = results.DefaultRetention
}

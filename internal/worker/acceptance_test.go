package worker_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/enqueuecmd"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
	"github.com/cardimport/cardimport/internal/worker"
	"github.com/cardimport/cardimport/tasks"
)

const card = "pbLatjvWOibDc5-TBnbUk1pD12o0"

// memberFile is a registration system's export: valid members, members
// WeChat refuses for good, members who already hold the card, repeated
// out_request_nos and rows no import could use.
type memberFile struct {
	csv         bytes.Buffer
	line        int
	valid       []tasks.Payload // imported: every one exactly once
	refused     []tasks.Payload // archived with their WeChat code
	members     []tasks.Payload // completed as already_member
	duplicates  int
	invalid     map[int]string // line → what stderr must say
	enqueueable int
}

func (f *memberFile) row(format string, args ...any) {
	f.line++
	fmt.Fprintf(&f.csv, format+"\n", args...)
}

func newMemberFile(n int) *memberFile {
	f := &memberFile{invalid: map[int]string{}}
	f.row("card_id,openid,code,out_request_no")
	for i := 0; i < n; i++ {
		no := fmt.Sprintf("1900000001-20261128-%06d", i)
		switch {
		case i%15 == 3:
			p := tasks.Payload{CardID: card, OpenID: fmt.Sprintf("%sMuAJO_M2pxb%05d", wechatpaytest.OpenIDPrefixNoTrade, i), OutRequestNo: no}
			f.refused = append(f.refused, p)
			f.row("%s,%s,,%s", p.CardID, p.OpenID, p.OutRequestNo)
		case i%15 == 7:
			p := tasks.Payload{CardID: card, OpenID: fmt.Sprintf("%sMuAJO_M2pxb%05d", wechatpaytest.OpenIDPrefixMember, i), OutRequestNo: no}
			f.members = append(f.members, p)
			f.row("%s,%s,,%s", p.CardID, p.OpenID, p.OutRequestNo)
		case i%25 == 11:
			f.row("%s,,,%s", card, no)
			f.invalid[f.line] = fmt.Sprintf("line %d: openid: is required", f.line)
		case i%25 == 12:
			f.row("%s,oUpF8uMuAJO_M2pxb%05d,,%s/bad", card, i, no)
			f.invalid[f.line] = fmt.Sprintf("line %d: out_request_no: character '/'", f.line)
		case i%25 == 13:
			f.row("%s,oUpF8uMuAJO_M2pxb%05d,%s", card, i, no)
			f.invalid[f.line] = fmt.Sprintf("line %d: ", f.line)
		case i%20 == 19:
			// The same out_request_no as the previous valid member.
			prev := f.valid[len(f.valid)-1]
			f.row("%s,%s,,%s", prev.CardID, prev.OpenID, prev.OutRequestNo)
			f.duplicates++
		default:
			p := tasks.Payload{CardID: card, OpenID: fmt.Sprintf("oUpF8uMuAJO_M2pxb%05d", i), OutRequestNo: no}
			f.valid = append(f.valid, p)
			f.row("%s,%s,,%s", p.CardID, p.OpenID, p.OutRequestNo)
		}
	}
	f.enqueueable = len(f.valid) + len(f.refused) + len(f.members)
	return f
}

// TestImportAFileEndToEnd is the pipeline's promise: a file of a few
// hundred members, enqueued by the CLI and imported by the worker
// (configured from the sandbox's env file) against a WeChat stand-in that
// checks signatures and fails a fifth of first attempts, ends with every
// valid member imported exactly once, each refusal archived with its WeChat
// code, already-members completed as such, and each bad row named by line.
func TestImportAFileEndToEnd(t *testing.T) {
	t.Parallel()
	srv := wechatpaytest.NewServer(wechatpaytest.TestKeys(t), wechatpaytest.WithFirstAttemptFaults(0.2))
	t.Cleanup(srv.Close)
	r := testkit.NewRedis(t)
	queue := r.Queue(t)
	env := testkit.WorkerEnv(t, srv, r, queue)
	// The emulator has no limit; the default of 10 a second would make
	// this test take half a minute.
	env["WECHATPAY_RATE_LIMIT"] = "200"
	getenv := func(k string) string { return env[k] }

	f := newMemberFile(300)
	path := filepath.Join(t.TempDir(), "members.csv")
	require.NoError(t, os.WriteFile(path, f.csv.Bytes(), 0o600))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := enqueuecmd.Run(ctx, []string{"file", "--queue", queue, path}, getenv, nil, &stdout, &stderr)
	require.Equal(t, 2, code, "invalid rows exit 2; stderr:\n%s", stderr.String())
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	require.Equal(t, fmt.Sprintf("enqueued=%d duplicates=%d invalid=%d", f.enqueueable, f.duplicates, len(f.invalid)), lines[len(lines)-1])
	for _, want := range f.invalid {
		require.Contains(t, stderr.String(), want)
	}
	require.Len(t, strings.Split(strings.TrimSpace(stderr.String()), "\n"), len(f.invalid), "one stderr line per bad row")

	logs := &testkit.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- worker.Run(ctx, []string{"--queue", queue, "--concurrency", "8", "--retry-min-delay", "50ms", "--retry-max-delay", "200ms"}, getenv, logs, logs)
	}()

	insp := asynq.NewInspector(r.Opt)
	defer insp.Close()
	deadline := time.Now().Add(60 * time.Second)
	var q *asynq.QueueInfo
	var err error
	for {
		q, err = insp.GetQueueInfo(queue)
		require.NoError(t, err)
		if q.Pending+q.Active+q.Scheduled+q.Retry == 0 && q.Completed+q.Archived == f.enqueueable {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("worker ended early: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue not drained in 60s: %+v\n%s", q, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err, "worker stops cleanly")
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not stop")
	}

	stats := srv.Stats()
	t.Logf("%s; imported %d, already members %d, archived %d, transient faults %d, replays %d",
		lines[len(lines)-1], stats.Imports, len(f.members), q.Archived, stats.Refusals["SYSTEM_ERROR"], stats.Replays)
	require.Greater(t, stats.Refusals["SYSTEM_ERROR"], f.enqueueable/10, "about a fifth of first attempts failed")
	require.Equal(t, len(f.valid), stats.Imports)
	for _, p := range f.valid {
		require.Equal(t, 1, srv.ImportCount(p.CardID, p.OpenID), "imported exactly once")
		info, err := insp.GetTaskInfo(queue, p.OutRequestNo)
		require.NoError(t, err)
		require.Equal(t, asynq.TaskStateCompleted, info.State)
		res, err := tasks.DecodeResult(info.Result)
		require.NoError(t, err)
		require.Equal(t, tasks.OutcomeImported, res.Outcome)
		require.Regexp(t, `^[0-9]{12}$`, res.Code)
	}
	for _, p := range f.members {
		info, err := insp.GetTaskInfo(queue, p.OutRequestNo)
		require.NoError(t, err)
		require.Equal(t, asynq.TaskStateCompleted, info.State)
		res, err := tasks.DecodeResult(info.Result)
		require.NoError(t, err)
		code, held := srv.HeldCode(p.CardID, p.OpenID)
		require.True(t, held)
		require.Equal(t, tasks.Result{Outcome: tasks.OutcomeAlreadyMember, Code: code}, res, "the code WeChat lists")
	}
	require.Equal(t, len(f.refused), q.Archived)
	for _, p := range f.refused {
		info, err := insp.GetTaskInfo(queue, p.OutRequestNo)
		require.NoError(t, err)
		require.Equal(t, asynq.TaskStateArchived, info.State)
		require.Contains(t, info.LastErr, "http 400 INVALID_REQUEST")
		require.NotContains(t, info.LastErr, p.OpenID)
	}
	out := logs.String()
	require.Contains(t, out, `"message":"worker started"`)
	require.Contains(t, out, `"message":"worker stopped"`)
	for _, p := range append(append(f.valid, f.refused...), f.members...) {
		require.NotContains(t, out, p.OpenID, "no openid in the logs")
	}
}

package faultsuite_test

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
	"github.com/cardimport/cardimport/results"
)

// runMembers is the size of the run the results scenario imports.
const runMembers = 10000

// lineCounter keeps a follower's output and counts its lines.
type lineCounter struct{ testkit.Buffer }

func (l *lineCounter) lines() int { return l.Lines() }

// events decodes the JSON lines a follower wrote; a line cut short by its
// SIGKILL is left out.
func (l *lineCounter) events(t *testing.T) []results.Event {
	var out []results.Event
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	for sc.Scan() {
		var e results.Event
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// TestRunResultsEndToEnd: a 10,000-member run through real processes —
// `enqueue file --wait`, two workers, a `results follow` SIGKILLed half-way
// and started again with the same names — against the emulator with
// transient faults, members who already hold the card and refusals. The
// run ends with the right counts; the export has one line per member, each
// code the emulator's, each dead one with WeChat's code; the follower wrote
// every outcome at least once; a dead member replayed after its cause is
// fixed shows up imported in the run, the export and the stream.
func TestRunResultsEndToEnd(t *testing.T) {
	if os.Getenv("FAULTS") == "" {
		t.Skip("the fault suite runs with FAULTS=1 (bench/faults.sh; .ci/run runs it)")
	}
	if raceEnabled {
		t.Skip("the fault suite runs without -race")
	}
	t.Parallel()
	srv := wechatpaytest.NewServer(wechatpaytest.TestKeys(t), wechatpaytest.WithFirstAttemptFaults(transientShare))
	t.Cleanup(srv.Close)
	r := testkit.NewRedis(t)
	queue := r.Queue(t)
	vars := testkit.WorkerEnv(t, srv, r, queue)
	vars["WECHATPAY_RATE_LIMIT"] = "2000"
	vars["RETRY_MIN_DELAY"] = "100ms"
	vars["RETRY_MAX_DELAY"] = "1s"
	env := testkit.Environ(vars)

	const run = "nightly-20261204"
	noAuthCard := wechatpaytest.CardIDPrefixNoAuth + "RunCard0001"
	var csvFile strings.Builder
	csvFile.WriteString("card_id,openid,out_request_no\n")
	kind := map[string]string{} // out_request_no → fresh, holder, refused, noauth
	openid := map[string]string{}
	cardOf := map[string]string{}
	for i := range runMembers {
		no := fmt.Sprintf("1900000001-20261204-run-%06d", i)
		oid := fmt.Sprintf("oFaUlT8uMuAJO_M2px%010d", i)
		c, k := card, "fresh"
		switch {
		case i%20 == 3:
			k = "holder"
			srv.Seed(card, oid)
		case i%25 == 7:
			k, oid = "refused", wechatpaytest.OpenIDPrefixNoTrade+fmt.Sprintf("%010d", i)
		case i == 11:
			k, c = "noauth", noAuthCard
		}
		kind[no], openid[no], cardOf[no] = k, oid, c
		fmt.Fprintf(&csvFile, "%s,%s,%s\n", c, oid, no)
	}
	path := filepath.Join(t.TempDir(), "members.csv")
	require.NoError(t, os.WriteFile(path, []byte(csvFile.String()), 0o600))

	follower := &lineCounter{}
	startFollower := func() *exec.Cmd {
		bin, err := testkit.Command("enqueue")
		require.NoError(t, err)
		cmd := exec.Command(bin, "results", "follow", "--queue", queue, "--group", "registration", "--consumer", "reg-1")
		cmd.Env, cmd.Stdout, cmd.Stderr = env, follower, os.Stderr
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	f1 := startFollower()
	testkit.Start(t, "worker", env)
	testkit.Start(t, "worker", env)

	bin, err := testkit.Command("enqueue")
	require.NoError(t, err)
	enqueue := func(args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		return cmd
	}
	enq := enqueue("file", "--queue", queue, "--run", run, "--wait", path)
	var enqOut, enqErr bytes.Buffer
	enq.Stdout, enq.Stderr = &enqOut, &enqErr
	start := time.Now()
	require.NoError(t, enq.Start())

	// Half-way, the follower is killed, and started again with the same
	// names a moment later.
	for deadline := time.Now().Add(recoveryLimit); follower.lines() < runMembers/2; {
		require.True(t, time.Now().Before(deadline), "the follower wrote %d lines", follower.lines())
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, f1.Process.Signal(syscall.SIGKILL))
	_ = f1.Wait()
	killedAt := follower.lines()
	startFollower()

	waitErr := enq.Wait()
	took := time.Since(start)
	var exit *exec.ExitError
	require.ErrorAs(t, waitErr, &exit, "stdout:\n%s\nstderr:\n%s", enqOut.String(), enqErr.String())
	require.Equal(t, 3, exit.ExitCode(), "--wait exits 3 when some member is dead")
	counts := map[string]int{}
	for _, k := range kind {
		counts[k]++
	}
	dead := counts["refused"] + counts["noauth"]
	lines := strings.Split(strings.TrimSpace(enqOut.String()), "\n")
	require.Equal(t, "run="+run, lines[len(lines)-3])
	require.Equal(t, fmt.Sprintf("enqueued=%d duplicates=0 invalid=0", runMembers), lines[len(lines)-2])
	require.Equal(t, fmt.Sprintf("imported=%d already_member=%d dead=%d", counts["fresh"], counts["holder"], dead), lines[len(lines)-1])

	exported := func() map[string][]string {
		out, err := enqueue("results", "export", "--queue", queue, "--run", run).Output()
		require.NoError(t, err)
		recs, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
		require.NoError(t, err)
		byNo := map[string][]string{}
		for _, rec := range recs[1:] {
			require.NotContains(t, byNo, rec[0], "one line per out_request_no")
			byNo[rec[0]] = rec
		}
		return byNo
	}
	byNo := exported()
	require.Len(t, byNo, runMembers)
	perOutcome := map[string]int{}
	for no, rec := range byNo {
		perOutcome[rec[3]]++
		switch kind[no] {
		case "fresh", "holder":
			want := map[string]string{"fresh": "imported", "holder": "already_member"}[kind[no]]
			require.Equal(t, want, rec[3], no)
			code, ok := srv.HeldCode(cardOf[no], openid[no])
			require.True(t, ok)
			require.Equal(t, code, rec[4], "%s: the code WeChat holds", no)
		case "refused":
			require.Equal(t, []string{"dead", "", "INVALID_REQUEST"}, rec[3:6], no)
		case "noauth":
			require.Equal(t, []string{"dead", "", "NO_AUTH"}, rec[3:6], no)
		}
		require.NotContains(t, rec[6], "oFaUlT8u", "no openid in the export")
	}
	rs := readRun(t, enqueue("runs", "show", "--queue", queue, "--json", run))
	require.Equal(t, map[string]int{"imported": int(rs.Imported), "already_member": int(rs.AlreadyMember), "dead": int(rs.Dead)}, perOutcome, "the run's counts are the export's")
	for no, k := range kind {
		if k == "fresh" {
			require.Equal(t, 1, srv.ImportCount(cardOf[no], openid[no]), "%s imported once", no)
		}
	}

	// Its cause fixed, the NO_AUTH member is replayed and imported.
	srv.AuthorizeCard(noAuthCard)
	out, err := enqueue("dead", "replay", "--queue", queue, "--card-id", noAuthCard).CombinedOutput()
	require.NoError(t, err, string(out))
	// A replay does not reopen the run (the member counts as dead until
	// it ends again): poll its counts.
	for deadline := time.Now().Add(time.Minute); readRun(t, enqueue("runs", "show", "--queue", queue, "--json", run)).Imported < int64(counts["fresh"]+1); {
		require.True(t, time.Now().Before(deadline), "the replayed member was not imported within a minute")
		time.Sleep(100 * time.Millisecond)
	}
	out, err = enqueue("runs", "wait", "--queue", queue, run).Output()
	require.Error(t, err, "still dead members: exit 3")
	require.Equal(t, fmt.Sprintf("imported=%d already_member=%d dead=%d\n", counts["fresh"]+1, counts["holder"], dead-1), string(out))
	noAuthNo := "1900000001-20261204-run-000011"
	require.Equal(t, "imported", exported()[noAuthNo][3], "the export shows the replay's outcome")

	// The follower, killed once, wrote every outcome at least once, the
	// replay's too.
	want := runMembers + 1
	for deadline := time.Now().Add(time.Minute); len(follower.events(t)) < want; {
		require.True(t, time.Now().Before(deadline), "the follower wrote %d events of %d", len(follower.events(t)), want)
		time.Sleep(50 * time.Millisecond)
	}
	seen := map[string]bool{}
	replayed := false
	for _, e := range follower.events(t) {
		seen[e.OutRequestNo] = true
		replayed = replayed || (e.OutRequestNo == noAuthNo && e.Outcome == "imported")
	}
	require.Len(t, seen, runMembers)
	require.True(t, replayed, "the replay's outcome reached the follower")
	t.Logf("faults: run: %d members (%d imported, %d already members, %d dead) in %s; follower killed after %d lines, %d lines written in all (%d again after the restart)",
		runMembers, counts["fresh"], counts["holder"], dead, took.Round(100*time.Millisecond), killedAt, follower.lines(), follower.lines()-want)
}

// readRun reads a run from `enqueue runs show --json`.
func readRun(t *testing.T, cmd *exec.Cmd) results.Run {
	t.Helper()
	out, err := cmd.Output()
	require.NoError(t, err)
	var r results.Run
	require.NoError(t, json.Unmarshal(out, &r))
	return r
}

package enqueuecmd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/tasks"
)

// brokenCSV has every kind of bad row, a repeat within the file (line 9)
// and a row already queued before the run (order-5, line 6).
const brokenCSV = header +
	"pLcard0001,oUser0000000001,,order-1\n" + // 2
	"pLcard0001,oUser0000000002,order-2\n" + // 3: a field short
	"pLcard0001,oUser0000000003,,order-3,extra\n" + // 4: a field too many
	"pLcard0001,\"oUser\"0000000004,,order-4\n" + // 5: broken quoting
	"pLcard0001,oUser0000000005,,order-5\n" + // 6: already queued
	"pLcard0001,oUser\xc3\x28000006,,order-6\n" + // 7: bad UTF-8
	"pLcard0001,oUser0000000007,,order-7\n" + // 8
	"pLcard0001,oUser0000000008,,order-1\n" // 9: repeats line 2

const brokenCSVStderr = "line 3: has 3 fields, the header has 4\n" +
	"line 4: has 5 fields, the header has 4\n" +
	"line 5: openid: extraneous or missing \" in quoted-field\n" +
	"line 7: openid: is not valid UTF-8\n"

// brokenJSONL is the same members as JSON lines, with a blank line 2.
const brokenJSONL = `{"card_id":"pLcard0001","openid":"oUser0000000001","out_request_no":"order-1"}` + "\n" + // 1
	"\n" + // 2
	`{"card_id":"pLcard0001","openid":"oUser0000000002","out_request_no":"order-2",}` + "\n" + // 3: broken JSON
	`{"card_id":"pLcard0001","openid":"oUser0000000003"}` + "\n" + // 4: no out_request_no
	`{"card_id":"pLcard0001","openid":"oUser0000000005","out_request_no":"order-5"}` + "\n" + // 5: already queued
	"{\"card_id\":\"pLcard0001\",\"openid\":\"oUser\xff\",\"out_request_no\":\"order-6\"}\n" + // 6: bad UTF-8
	`{"card_id":"pLcard0001","openid":"oUser0000000007","out_request_no":"order-7"}` + "\n" + // 7
	`{"card_id":"pLcard0001","openid":"oUser0000000008","out_request_no":"order-1"}` // 8: repeats line 1, no final newline

const brokenJSONLStderr = "line 3: is not valid JSON: invalid character '}' looking for beginning of object key string (at byte 79)\n" +
	"line 4: out_request_no: is required\n" +
	"line 6: openid: is not valid UTF-8\n"

func TestFileBrokenRowsOnStandardInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantStderr string
	}{
		{name: "csv", args: []string{"-"}, stdin: brokenCSV, wantStderr: brokenCSVStderr},
		{name: "json lines", args: []string{"--format", "jsonl", "-"}, stdin: brokenJSONL, wantStderr: brokenJSONLStderr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			five := member("oUser0000000005", "order-5")
			require.Equal(t, result{stdout: "enqueued out_request_no=order-5\n"},
				b.run(t, nil, "one", "--card-id", five.CardID, "--openid", five.OpenID, "--out-request-no", five.OutRequestNo))

			got := b.run(t, strings.NewReader(tt.stdin), append([]string{"file"}, tt.args...)...)
			require.Equal(t, result{code: 2, stdout: "enqueued=2 duplicates=2 invalid=" + fmt.Sprint(strings.Count(tt.wantStderr, "\n")) + "\n", stderr: tt.wantStderr}, got)
			require.Equal(t, map[string]tasks.Payload{
				"order-1": member("oUser0000000001", "order-1"),
				"order-5": five,
				"order-7": member("oUser0000000007", "order-7"),
			}, b.queued(t))
		})
	}
}

func TestFileDryRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	five := member("oUser0000000005", "order-5")
	require.Equal(t, 0, b.run(t, nil, "one", "--card-id", five.CardID, "--openid", five.OpenID, "--out-request-no", five.OutRequestNo).code)

	got := b.run(t, strings.NewReader(brokenCSV), "file", "--dry-run", "-")
	require.Equal(t, result{
		code:   2,
		stdout: "dry run: nothing was enqueued; enqueued= counts the rows that would be\nenqueued=2 duplicates=2 invalid=4\n",
		stderr: brokenCSVStderr,
	}, got)
	require.Equal(t, map[string]tasks.Payload{"order-5": five}, b.queued(t), "a dry run writes nothing")

	// The real run then does what the dry run said.
	got = b.run(t, strings.NewReader(brokenCSV), "file", "-")
	require.Equal(t, result{code: 2, stdout: "enqueued=2 duplicates=2 invalid=4\n", stderr: brokenCSVStderr}, got)
	require.Len(t, b.queued(t), 3)
}

func TestFileDryRunOfCleanFile(t *testing.T) {
	// No queue exists yet: a dry run must not create one.
	t.Parallel()
	b := setup(t)
	got := b.run(t, strings.NewReader(header+"pLcard0001,oUser0000000001,,order-1\n"), "file", "--dry-run", "-")
	require.Equal(t, result{stdout: "dry run: nothing was enqueued; enqueued= counts the rows that would be\nenqueued=1 duplicates=0 invalid=0\n"}, got)
	queues, err := b.insp.Queues()
	require.NoError(t, err)
	require.NotContains(t, queues, b.queue)
}

func TestFileRerunAfterInterruption(t *testing.T) {
	// A run stopped midway (Ctrl-C) then the same file again: the rows
	// already queued are duplicates, the rest are enqueued, and every
	// member is queued once.
	t.Parallel()
	b := setup(t)
	const n = 200
	var rows strings.Builder
	rows.WriteString(header)
	want := map[string]tasks.Payload{}
	for i := range n {
		m := member(fmt.Sprintf("oUser%010d", i), fmt.Sprintf("order-%d", i))
		fmt.Fprintf(&rows, "%s,%s,,%s\n", m.CardID, m.OpenID, m.OutRequestNo)
		want[m.OutRequestNo] = m
	}
	all := rows.String()
	// The first half, then Ctrl-C while standard input waits for more.
	half := strings.Index(all, fmt.Sprintf("order-%d\n", n/2)) + len(fmt.Sprintf("order-%d\n", n/2))
	stdin, w := io.Pipe()
	t.Cleanup(func() { _ = w.Close() })
	ctx, cancel := context.WithCancel(testkit.Context(t))
	done := make(chan result, 1)
	go func() { done <- b.runContext(ctx, stdin, "file", "-") }()
	_, err := io.WriteString(w, all[:half])
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := b.insp.GetQueueInfo(b.queue)
		return err == nil && info.Pending == n/2+1
	}, 20*time.Second, 10*time.Millisecond)
	cancel()
	var first result
	select {
	case first = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the command did not stop when interrupted")
	}
	require.Equal(t, result{code: 1, stdout: fmt.Sprintf("enqueued=%d duplicates=0 invalid=0\n", n/2+1), stderr: "enqueue: interrupted\n"}, first)

	path := filepath.Join(t.TempDir(), "members.csv")
	require.NoError(t, os.WriteFile(path, []byte(all), 0o600))
	second := b.run(t, nil, "file", path)
	require.Equal(t, result{stdout: fmt.Sprintf("enqueued=%d duplicates=%d invalid=0\n", n-(n/2+1), n/2+1)}, second)
	require.Equal(t, want, b.queued(t))
}

func TestFileNoProgressWhenPiped(t *testing.T) {
	// stderr a pipe (as under a scheduler or `2>log`): the report alone,
	// not a byte of a progress bar.
	t.Parallel()
	b := setup(t)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	stderr := make(chan string, 1)
	go func() {
		data, _ := io.ReadAll(r)
		stderr <- string(data)
	}()
	path := filepath.Join(t.TempDir(), "members.csv")
	require.NoError(t, os.WriteFile(path, []byte(brokenCSV), 0o600))
	var stdout bytes.Buffer
	code := Run(testkit.Context(t), []string{"file", "--queue", b.queue, path}, func(k string) string { return b.env[k] }, nil, &stdout, w)
	require.NoError(t, w.Close())
	require.Equal(t, 2, code)
	require.Equal(t, "enqueued=3 duplicates=1 invalid=4\n", b.takeRunLine(stdout.String()))
	require.Equal(t, brokenCSVStderr, <-stderr)
}

func TestIsTerminal(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close(); _ = w.Close() })
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	tests := []struct {
		name string
		w    io.Writer
		want bool
	}{
		{name: "buffer", w: &bytes.Buffer{}, want: false},
		{name: "pipe", w: w, want: false},
		{name: "file", w: f, want: false},
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		t.Cleanup(func() { _ = tty.Close() })
		tests = append(tests, struct {
			name string
			w    io.Writer
			want bool
		}{name: "terminal", w: tty, want: true})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, isTerminal(tt.w))
			require.Equal(t, tt.want, newProgress(tt.w, 100) != nil)
		})
	}
}

func TestSizeOf(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "members.csv")
	require.NoError(t, os.WriteFile(path, []byte(brokenCSV), 0o600))
	f, err := os.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close(); _ = w.Close() })
	require.Equal(t, int64(len(brokenCSV)), sizeOf(f), "a file: bar with ETA")
	require.Equal(t, int64(-1), sizeOf(r), "a pipe: spinner")
	require.Equal(t, int64(-1), sizeOf(strings.NewReader("x")))
}

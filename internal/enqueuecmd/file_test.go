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

const header = "card_id,openid,code,out_request_no\n"

// member is the payload tests expect for card c1.
func member(openid, no string) tasks.Payload {
	return tasks.Payload{CardID: "pLcard0001", OpenID: openid, OutRequestNo: no}
}

func TestFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// file is written to a file named fileName, whose path replaces
		// FILE in args and in the expected stderr.
		file     string
		fileName string
		stdin    string
		args     []string
		wantCode int
		// wantStdout is the whole of stdout; wantStderr the whole of
		// stderr.
		wantStdout string
		wantStderr string
		wantQueued map[string]tasks.Payload
	}{
		{
			name:     "csv with valid, invalid and repeated rows",
			fileName: "members.csv",
			file: header +
				"pLcard0001,oUser0000000001,,order-1\n" + // 2
				"pLcard0001,,,order-2\n" + // 3: no openid
				"pLcard0001,oUser0000000003,,order#3\n" + // 4: bad character
				"pLcard0001pLcard0001pLcard0001pLc,oUser0000000004,,order-4\n" + // 5: card_id too long
				"pLcard0001,oUser0000000005,order-5\n" + // 6: a field short
				"pLcard0001,\"oUser0000000006\"x,,order-6\n" + // 7: broken quote
				"pLcard0001,oUser\xff0000000007,,order-7\n" + // 8: bad UTF-8
				"pLcard0001,oUser0000000008,,order-1\n" + // 9: repeats line 2
				"pLcard0001,oUser0000000009,K9,order-9\n" + // 10
				"pLcard0001,\"oUser0000000010,,order-10\n" + // 11: stray quote
				"pLcard0001,oUser0000000011,,order-11\n", // 12
			args:       []string{"FILE"},
			wantCode:   2,
			wantStdout: "enqueued=3 duplicates=1 invalid=7\n",
			wantStderr: "line 3: openid: is required\n" +
				"line 4: out_request_no: character '#' at position 6 is not allowed (letters, digits and | _ * - only)\n" +
				"line 5: card_id: is 33 characters long, at most 32 allowed\n" +
				"line 6: has 3 fields, the header has 4\n" +
				"line 7: openid: extraneous or missing \" in quoted-field\n" +
				"line 8: openid: is not valid UTF-8\n" +
				"line 11: openid: extraneous or missing \" in quoted-field (the record runs on to line 12)\n",
			wantQueued: map[string]tasks.Payload{
				"order-1":  member("oUser0000000001", "order-1"),
				"order-9":  {CardID: "pLcard0001", OpenID: "oUser0000000009", Code: "K9", OutRequestNo: "order-9"},
				"order-11": member("oUser0000000011", "order-11"),
			},
		},
		{
			name: "json lines from standard input",
			stdin: `{"card_id":"pLcard0001","openid":"oUser0000000001","out_request_no":"order-1"}` + "\n" +
				"\n" +
				`{"card_id":"pLcard0001","openid":12,"out_request_no":"order-3"}` + "\n" +
				`{"card_id":"pLcard0001","openid":"oUser0000000004","out_request_no":"order-4"` + "\n" +
				`["pLcard0001","oUser0000000005","order-5"]` + "\n" +
				`{"card_id":"pLcard0001","openid":"oUser0000000006","out_request_no":"order-6","phone":"x"}` + "\n" +
				`{"card_id":"pLcard0001","openid":"oUser0000000007","code":null,"out_request_no":"order-7"}`,
			args:       []string{"--format", "jsonl", "-"},
			wantCode:   2,
			wantStdout: "enqueued=2 duplicates=0 invalid=4\n",
			wantStderr: "line 3: openid: is a number, want a string\n" +
				"line 4: is not valid JSON: unexpected end of JSON input (at byte 78)\n" +
				"line 5: is an array, want a JSON object\n" +
				"line 6: unknown key \"phone\" (keys are card_id, openid, code, out_request_no)\n",
			wantQueued: map[string]tasks.Payload{
				"order-1": member("oUser0000000001", "order-1"),
				"order-7": member("oUser0000000007", "order-7"),
			},
		},
		{
			name:       "json lines by extension",
			fileName:   "members.ndjson",
			file:       `{"card_id":"pLcard0001","openid":"oUser0000000001","out_request_no":"order-1"}` + "\n",
			args:       []string{"FILE"},
			wantStdout: "enqueued=1 duplicates=0 invalid=0\n",
			wantQueued: map[string]tasks.Payload{"order-1": member("oUser0000000001", "order-1")},
		},
		{
			name:       "default card for a file without card_id",
			fileName:   "members.csv",
			file:       "openid,out_request_no\noUser0000000001,order-1\noUser0000000002,order-2\n",
			args:       []string{"--card-id", "pLcard0001", "FILE"},
			wantStdout: "enqueued=2 duplicates=0 invalid=0\n",
			wantQueued: map[string]tasks.Payload{
				"order-1": member("oUser0000000001", "order-1"),
				"order-2": member("oUser0000000002", "order-2"),
			},
		},
		{
			name:       "default card fills empty cells only",
			stdin:      header + ",oUser0000000001,,order-1\npLcard0002,oUser0000000002,,order-2\n",
			args:       []string{"--card-id", "pLcard0001", "-"},
			wantStdout: "enqueued=2 duplicates=0 invalid=0\n",
			wantQueued: map[string]tasks.Payload{
				"order-1": member("oUser0000000001", "order-1"),
				"order-2": {CardID: "pLcard0002", OpenID: "oUser0000000002", OutRequestNo: "order-2"},
			},
		},
		{
			name:       "no card_id column and no default",
			fileName:   "members.csv",
			file:       "openid,out_request_no\noUser0000000001,order-1\n",
			args:       []string{"FILE"},
			wantCode:   1,
			wantStdout: "enqueued=0 duplicates=0 invalid=0\n",
			wantStderr: "enqueue: FILE: bad header: missing column \"card_id\" (or give a default card id)\n",
		},
		{
			name:       "unknown column",
			stdin:      "card_id,openid,phone,out_request_no\n",
			args:       []string{"-"},
			wantCode:   1,
			wantStdout: "enqueued=0 duplicates=0 invalid=0\n",
			wantStderr: "enqueue: standard input: bad header: unknown column \"phone\" (columns are card_id, openid, code, out_request_no)\n",
		},
		{
			name:       "missing file",
			args:       []string{"/nonexistent/members.csv"},
			wantCode:   1,
			wantStdout: "enqueued=0 duplicates=0 invalid=0\n",
			wantStderr: "enqueue: open /nonexistent/members.csv: no such file or directory\n",
		},
		{
			name:       "bad default card",
			stdin:      "openid,out_request_no\n",
			args:       []string{"--card-id", "pLcard0001 ", "-"},
			wantCode:   1,
			wantStdout: "enqueued=0 duplicates=0 invalid=0\n",
			wantStderr: "enqueue: --card-id: has leading or trailing white space\n",
		},
		{
			name:       "no path",
			args:       []string{},
			wantCode:   1,
			wantStdout: "enqueued=0 duplicates=0 invalid=0\n",
			wantStderr: "enqueue: file: want one PATH (- for standard input), got 0 arguments; flags go before it\n",
		},
		{
			name:       "flag after the path",
			args:       []string{"-", "--card-id", "c1"},
			wantCode:   1,
			wantStdout: "enqueued=0 duplicates=0 invalid=0\n",
			wantStderr: "enqueue: file: want one PATH (- for standard input), got 3 arguments; flags go before it\n",
		},
		{
			name:       "unknown format",
			args:       []string{"--format", "xlsx", "-"},
			wantCode:   1,
			wantStdout: "enqueued=0 duplicates=0 invalid=0\n",
			wantStderr: "enqueue: --format: unknown format \"xlsx\" (csv, jsonl)\n",
		},
		{
			name:       "no workers",
			args:       []string{"--concurrency", "0", "-"},
			wantCode:   1,
			wantStdout: "enqueued=0 duplicates=0 invalid=0\n",
			wantStderr: "enqueue: --concurrency: must be at least 1, got 0\n",
		},
		{
			name:       "negative retention",
			args:       []string{"--retention", "-1h", "-"},
			wantCode:   1,
			wantStdout: "enqueued=0 duplicates=0 invalid=0\n",
			wantStderr: "enqueue: --retention: must not be negative, got -1h0m0s\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			path := ""
			if tt.fileName != "" {
				path = filepath.Join(t.TempDir(), tt.fileName)
				require.NoError(t, os.WriteFile(path, []byte(tt.file), 0o600))
			}
			args := []string{"file"}
			for _, a := range tt.args {
				args = append(args, strings.ReplaceAll(a, "FILE", path))
			}
			got := b.run(t, strings.NewReader(tt.stdin), args...)
			if path != "" {
				got.stderr = strings.ReplaceAll(got.stderr, path, "FILE")
			}
			require.Equal(t, result{code: tt.wantCode, stdout: tt.wantStdout, stderr: tt.wantStderr}, got)
			want := tt.wantQueued
			if want == nil {
				want = map[string]tasks.Payload{}
			}
			require.Equal(t, want, b.queued(t))
		})
	}
}

func TestFileTwiceIsAllDuplicates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	path := filepath.Join(t.TempDir(), "members.csv")
	require.NoError(t, os.WriteFile(path, []byte(header+
		"pLcard0001,oUser0000000001,,order-1\n"+
		"pLcard0001,,,order-2\n"+
		"pLcard0001,oUser0000000003,,order-3\n"+
		"pLcard0001,oUser0000000004,,order-4\n"), 0o600))

	first := b.run(t, nil, "file", path)
	require.Equal(t, result{code: 2, stdout: "enqueued=3 duplicates=0 invalid=1\n", stderr: "line 3: openid: is required\n"}, first)
	queued := b.queued(t)
	require.Len(t, queued, 3)

	second := b.run(t, nil, "file", path)
	require.Equal(t, result{code: 2, stdout: "enqueued=0 duplicates=3 invalid=1\n", stderr: "line 3: openid: is required\n"}, second)
	require.Equal(t, queued, b.queued(t))
}

func TestFileFirstOfRepeatedRowsWins(t *testing.T) {
	// Rows repeating an out_request_no go to the same worker, so whatever
	// the concurrency the first one in the file is enqueued.
	t.Parallel()
	b := setup(t)
	var in strings.Builder
	in.WriteString(header)
	want := map[string]tasks.Payload{}
	for round := range 3 {
		for i := range 40 {
			no := fmt.Sprintf("order-%d", i)
			openid := fmt.Sprintf("oUser%02d-round%d", i, round)
			fmt.Fprintf(&in, "pLcard0001,%s,,%s\n", openid, no)
			if round == 0 {
				want[no] = member(openid, no)
			}
		}
	}
	got := b.run(t, strings.NewReader(in.String()), "file", "--concurrency", "8", "-")
	require.Equal(t, result{code: 0, stdout: "enqueued=40 duplicates=80 invalid=0\n"}, got)
	require.Equal(t, want, b.queued(t))
}

func TestFileRedisUnreachable(t *testing.T) {
	t.Parallel()
	b := &testBundle{queue: "unused", env: map[string]string{"REDIS_URL": unreachableRedis}}
	got := b.run(t, strings.NewReader(header+"pLcard0001,oUser0000000001,,order-1\n"), "file", "-")
	require.Equal(t, 1, got.code)
	require.Equal(t, "enqueued=0 duplicates=0 invalid=0\n", got.stdout)
	require.True(t, strings.HasPrefix(got.stderr, "enqueue: redis: "), got.stderr)
}

// feedRows writes rows to w and waits until the bundle's queue holds n
// tasks.
func (b *testBundle) feedRows(t *testing.T, w io.Writer, rows string, n int) {
	t.Helper()
	_, err := io.WriteString(w, rows)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		infos, err := b.insp.ListPendingTasks(b.queue)
		return err == nil && len(infos) == n
	}, 10*time.Second, 10*time.Millisecond)
}

func TestFileInterrupted(t *testing.T) {
	// Ctrl-C while standard input has more to come: the command stops
	// without waiting for it, and says what it did.
	t.Parallel()
	b := setup(t)
	stdin, w := io.Pipe()
	t.Cleanup(func() { _ = w.Close() })
	ctx, cancel := context.WithCancel(testkit.Context(t))
	done := make(chan result, 1)
	go func() { done <- b.runContext(ctx, stdin, "file", "-") }()

	b.feedRows(t, w, header+
		"pLcard0001,oUser0000000001,,order-1\n"+
		"pLcard0001,,,order-2\n"+
		"pLcard0001,oUser0000000003,,order-3\n", 2)
	cancel()
	select {
	case got := <-done:
		require.Equal(t, result{code: 1, stdout: "enqueued=2 duplicates=0 invalid=1\n", stderr: "line 3: openid: is required\nenqueue: interrupted\n"}, got)
	case <-time.After(10 * time.Second):
		t.Fatal("the command did not stop when interrupted")
	}
}

func TestFileRedisLostMidway(t *testing.T) {
	// Only an embedded Redis can be stopped by a test.
	t.Parallel()
	b := setup(t)
	if b.redis.Embedded == nil {
		t.Skip("REDIS_URL is set: the shared Redis cannot be stopped")
	}
	stdin, w := io.Pipe()
	t.Cleanup(func() { _ = w.Close() })
	done := make(chan result, 1)
	go func() { done <- b.run(t, stdin, "file", "-") }()

	b.feedRows(t, w, header+"pLcard0001,oUser0000000001,,order-1\n", 1)
	b.redis.Embedded.Close()
	_, err := io.WriteString(w, "pLcard0001,oUser0000000002,,order-2\n")
	require.NoError(t, err)
	select {
	case got := <-done:
		require.Equal(t, 1, got.code)
		require.Equal(t, "enqueued=1 duplicates=0 invalid=0\n", got.stdout)
		require.True(t, strings.HasPrefix(got.stderr, "enqueue: standard input: line 3: enqueue task: "), got.stderr)
		require.NotContains(t, got.stderr, "oUser0000000002")
	case <-time.After(20 * time.Second):
		t.Fatal("the command did not stop when Redis went away")
	}
}

// TestFileSummaryIsTheLastLine: with standard output and standard error in
// one log (cron, 2>&1), a failed file run still ends with its summary, the
// error above it; so does dead replay.
func TestFileSummaryIsTheLastLine(t *testing.T) {
	t.Parallel()
	env := map[string]string{"REDIS_URL": unreachableRedis}
	for _, args := range [][]string{
		{"file", "--queue", "unused", "--concurrency", "0", "-"},
		{"file", "--queue", "unused", "-"},
		{"dead", "replay", "--queue", "unused", "--all"},
	} {
		var log bytes.Buffer
		code := Run(testkit.Context(t), args, func(k string) string { return env[k] }, strings.NewReader(header), &log, &log)
		require.Equal(t, 1, code, args)
		lines := strings.Split(strings.TrimSuffix(log.String(), "\n"), "\n")
		require.GreaterOrEqual(t, len(lines), 2, log.String())
		require.True(t, strings.HasPrefix(lines[len(lines)-2], "enqueue: "), "%v: %q", args, log.String())
		require.Regexp(t, `^(enqueued|replayed)=0 `, lines[len(lines)-1], "%v: %q", args, log.String())
	}
}

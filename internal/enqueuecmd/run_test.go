package enqueuecmd

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/results"
	"github.com/cardimport/cardimport/tasks"
)

// testBundle is what a test of the command works with: a Redis, a queue of
// its own in it, and the environment the command sees.
type testBundle struct {
	redis *testkit.Redis
	queue string
	env   map[string]string
	insp  *asynq.Inspector
	// lastRun is the run ID the last command printed, "" for none.
	lastRun atomic.Value
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	r := testkit.NewRedis(t)
	insp := asynq.NewInspector(r.Opt)
	t.Cleanup(func() { _ = insp.Close() })
	return &testBundle{
		redis: r,
		queue: r.Queue(t),
		env:   map[string]string{"REDIS_URL": r.URL},
		insp:  insp,
	}
}

// result is what one run of the command did.
type result struct {
	code   int
	stdout string
	stderr string
}

// run runs the command args[0] with --queue set to the bundle's queue and
// the rest of args.
func (b *testBundle) run(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	return b.runContext(testkit.Context(t), stdin, args...)
}

func (b *testBundle) runContext(ctx context.Context, stdin io.Reader, args ...string) result {
	if len(args) > 0 {
		args = append([]string{args[0], "--queue", b.queue}, args[1:]...)
	}
	return b.runRaw(ctx, stdin, args...)
}

// runRaw runs the command with args as they are.
func (b *testBundle) runRaw(ctx context.Context, stdin io.Reader, args ...string) result {
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var stdout, stderr bytes.Buffer
	code := Run(ctx, args, func(k string) string { return b.env[k] }, stdin, &stdout, &stderr)
	return result{code: code, stdout: b.takeRunLine(stdout.String()), stderr: stderr.String()}
}

// runLine is the "run=ID" line enqueue one and file print just before
// their summary.
var runLine = regexp.MustCompile(`(?m)^run=([A-Za-z0-9][A-Za-z0-9_.:-]{0,63})\n((?:enqueued|duplicate)[ =])`)

// takeRunLine moves the run line out of stdout into b.lastRun, so the
// tests that compare a command's whole output need not know the run's
// random ID; TestRunLine checks the line itself.
func (b *testBundle) takeRunLine(stdout string) string {
	m := runLine.FindStringSubmatchIndex(stdout)
	if m == nil {
		b.lastRun.Store("")
		return stdout
	}
	b.lastRun.Store(stdout[m[2]:m[3]])
	return stdout[:m[0]] + stdout[m[4]:]
}

// queued returns the members waiting in the bundle's queue by task ID,
// checking that each task ID is its payload's out_request_no and that each
// names a run; the run is then cleared, so tests compare the members alone
// (TestRunLine checks the run).
func (b *testBundle) queued(t *testing.T) map[string]tasks.Payload {
	t.Helper()
	got := testkit.PendingImports(t, b.insp, b.queue)
	for id, p := range got {
		require.NoError(t, results.ValidateRunID(p.Run), "member %s names no run", id)
		p.Run = ""
		got[id] = p
	}
	return got
}

func TestRunDispatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string // a line stderr must contain
	}{
		{name: "no command", args: nil, wantCode: 1, wantStderr: "usage: enqueue COMMAND"},
		{name: "help", args: []string{"-h"}, wantCode: 0, wantStderr: "usage: enqueue COMMAND"},
		{name: "help word", args: []string{"help"}, wantCode: 0, wantStderr: "  file      enqueue the import of every member"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 1, wantStderr: `enqueue: unknown command "frobnicate" (enqueue -h lists them)`},
		{name: "one -h", args: []string{"one", "-h"}, wantCode: 0, wantStderr: "usage: enqueue one --card-id CARD"},
		{name: "file -h", args: []string{"file", "-h"}, wantCode: 0, wantStderr: "enqueued=N duplicates=M invalid=K"},
		{name: "file -h names dry run", args: []string{"file", "-h"}, wantCode: 0, wantStderr: "-dry-run"},
		{name: "serve -h", args: []string{"serve", "-h"}, wantCode: 0, wantStderr: `Authorization: Bearer $INTAKE_TOKEN`},
		{name: "help lists serve", args: []string{"-h"}, wantCode: 0, wantStderr: "  serve     serve the HTTP intake"},
		{name: "unknown flag", args: []string{"file", "--frob", "x.csv"}, wantCode: 1, wantStdout: "enqueued=0 duplicates=0 invalid=0\n", wantStderr: "flag provided but not defined: -frob"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := &testBundle{env: map[string]string{}}
			got := b.runRaw(context.Background(), nil, tt.args...)
			require.Equal(t, tt.wantCode, got.code)
			require.Equal(t, tt.wantStdout, got.stdout)
			require.Contains(t, got.stderr, tt.wantStderr)
		})
	}
}

func TestRedisURLErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		env        string
		flag       string
		wantStderr string
	}{
		{name: "unset", wantStderr: "enqueue: REDIS_URL: not set (set it, or pass --redis-url)\n"},
		{name: "unknown scheme", env: "http://127.0.0.1:6379", wantStderr: "enqueue: REDIS_URL: unsupported uri scheme: \"http\" (want redis://host:port/db, rediss://…, redis-socket://…, redis-sentinel://host:port,…/db?master=NAME, redis-cluster://host:port,…)\n"},
		{name: "bad database", env: "redis://127.0.0.1:6379/first", wantStderr: "enqueue: REDIS_URL: could not parse redis uri: database number should be the first segment of the path (want redis://host:port/db, rediss://…, redis-socket://…, redis-sentinel://host:port,…/db?master=NAME, redis-cluster://host:port,…)\n"},
		{name: "unparsable, password not shown", env: "redis://:s3cret@127.0.0.1:63x79/0", wantStderr: "enqueue: REDIS_URL: invalid port after host (want redis://host:port/db, rediss://…, redis-socket://…, redis-sentinel://host:port,…/db?master=NAME, redis-cluster://host:port,…)\n"},
		{name: "flag overrides env", env: "redis://127.0.0.1:6379/0", flag: "rediss://:s3cret@[::1/0", wantStderr: "enqueue: --redis-url: missing ']' in host (want redis://host:port/db, rediss://…, redis-socket://…, redis-sentinel://host:port,…/db?master=NAME, redis-cluster://host:port,…)\n"},
	}
	for _, tt := range tests {
		for _, cmd := range [][]string{
			{"one", "--card-id", "c1", "--openid", "oUser1", "--out-request-no", "n1"},
			{"file", "-"},
		} {
			t.Run(tt.name+"/"+cmd[0], func(t *testing.T) {
				t.Parallel()
				b := &testBundle{queue: "unused", env: map[string]string{"REDIS_URL": tt.env}}
				args := cmd
				if tt.flag != "" {
					args = append([]string{cmd[0], "--redis-url", tt.flag}, cmd[1:]...)
				}
				got := b.run(t, strings.NewReader(header+"c1,oUser1,,n1\n"), args...)
				require.Equal(t, 1, got.code)
				require.Equal(t, tt.wantStderr, got.stderr)
				require.NotContains(t, got.stderr, "s3cret")
				if cmd[0] == "file" {
					require.Equal(t, "enqueued=0 duplicates=0 invalid=0\n", got.stdout)
				} else {
					require.Empty(t, got.stdout)
				}
			})
		}
	}
}

// TestHelpShowsNoSecret: no usage text of enqueue shows a value taken
// from REDIS_URL (which may hold a password) or INTAKE_TOKEN.
func TestHelpShowsNoSecret(t *testing.T) {
	t.Parallel()
	env := map[string]string{"REDIS_URL": "redis://default:s3cretRedis@10.0.0.1:6379/0", "INTAKE_TOKEN": "s3cretIntakeToken0123456789"}
	runs := [][]string{{"-h"}, {"dead", "-h"}, {"nope"}}
	for _, cmd := range commands {
		runs = append(runs, []string{cmd.name, "-h"}, []string{cmd.name, "--no-such-flag"})
	}
	runs = append(runs, []string{"dead", "list", "-h"}, []string{"dead", "replay", "-h"})
	for _, args := range runs {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			got := (&testBundle{env: env}).runRaw(context.Background(), nil, args...)
			require.NotEmpty(t, got.stderr)
			require.NotContains(t, got.stdout+got.stderr, "s3cret")
		})
	}
}

func TestQueueFromEnvironment(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.env["QUEUE"] = b.queue
	got := b.runRaw(testkit.Context(t), nil, "one", "--card-id", "c1", "--openid", "oUser1", "--out-request-no", "n1")
	require.Equal(t, result{code: 0, stdout: "enqueued out_request_no=n1\n"}, got)
	require.Contains(t, b.queued(t), "n1")

	// --queue overrides QUEUE.
	other := b.redis.Queue(t)
	got = b.runRaw(testkit.Context(t), nil, "one", "--queue", other, "--card-id", "c1", "--openid", "oUser2", "--out-request-no", "n2")
	require.Equal(t, result{code: 0, stdout: "enqueued out_request_no=n2\n"}, got)
	info, err := b.insp.GetTaskInfo(other, "n2")
	require.NoError(t, err)
	require.Equal(t, other, info.Queue)
}

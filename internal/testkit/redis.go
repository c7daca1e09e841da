package testkit

// A Redis to talk to: the server named by REDIS_URL when it is set (CI
// always sets it), otherwise an embedded miniredis, so that `go test ./...`
// works on a machine with only Go.
//
// Tests share a real server, so each test gets its own queue name instead of
// a database of its own, and its queue is deleted when the test ends; no
// test flushes the server.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/cardimport/cardimport/internal/redisconn"
	"github.com/cardimport/cardimport/tasks"
)

// Redis is the server one test talks to.
type Redis struct {
	// Opt connects asynq clients, servers and inspectors to it.
	Opt asynq.RedisConnOpt
	// URL is the redis:// URL of the server, for code that reads REDIS_URL.
	URL string
	// Embedded is set when the server is a miniredis started for this test.
	Embedded *miniredis.Miniredis
}

// NewRedis returns the Redis a test should use. With REDIS_URL unset it
// starts a miniredis that the test's cleanup stops.
func NewRedis(tb testing.TB) *Redis {
	tb.Helper()
	if url := os.Getenv("REDIS_URL"); url != "" {
		// Parsed as the worker parses it, so tests connect as it does.
		opt, err := redisconn.Parse("REDIS_URL", url)
		if err != nil {
			tb.Fatal(err)
		}
		return &Redis{Opt: opt, URL: url}
	}
	m := miniredis.RunT(tb)
	return &Redis{Opt: redisconn.ClientOpt{RedisClientOpt: asynq.RedisClientOpt{Addr: m.Addr()}}, URL: "redis://" + m.Addr() + "/0", Embedded: m}
}

// NewPrivateRedis returns a Redis database of the test's own, for a test
// that reads what asynq keeps for the whole server — the list of queues,
// every queue's statistics, the servers — as the dashboard's overview and
// the metrics do: on a shared database another test's queue can be deleted
// between two of those reads. Without REDIS_URL it is NewRedis: each
// embedded miniredis is the test's own already.
//
// With REDIS_URL set it claims one of databases 1–15 other than REDIS_URL's
// own: one that is empty, or that holds only what a killed test run left
// there. The claim is a key inside that database, set only if absent, so
// that tests, packages and runs on one server never share a database; it
// expires after an hour should the test die. When the test ends the keys
// tests write (asynq's, and the project's under cardimport: and
// rate:cardimport:) are deleted from it, and the claim is given back. A
// database that holds anything else is never claimed, and nothing else in
// it is ever deleted.
func NewPrivateRedis(tb testing.TB) *Redis {
	tb.Helper()
	r := NewRedis(tb)
	if r.Embedded != nil {
		return r
	}
	base, ok := r.Opt.(redisconn.ClientOpt)
	if !ok {
		tb.Fatalf("REDIS_URL: a private database needs a single Redis server, not %T", r.Opt)
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		tb.Fatalf("REDIS_URL: %v", err)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for {
		for db := 1; db < 16; db++ {
			if db == base.DB {
				continue
			}
			opt := base
			opt.DB = db
			rc, err := redisconn.Client(opt)
			if err != nil {
				tb.Fatalf("REDIS_URL: %v", err)
			}
			if !claim(ctx, rc, token) {
				_ = rc.Close()
				continue
			}
			tb.Cleanup(func() {
				defer rc.Close()
				ctx := context.Background()
				deleteTestKeys(ctx, rc)
				_ = rc.Del(ctx, usedKey).Err()
				_ = releaseScript.Run(ctx, rc, []string{claimKey}, token).Err()
			})
			if u.Scheme == "redis-socket" {
				// The path is the socket; the database is a parameter.
				q := u.Query()
				q.Set("db", strconv.Itoa(db))
				u.RawQuery = q.Encode()
			} else {
				u.Path = "/" + strconv.Itoa(db)
			}
			return &Redis{Opt: opt, URL: u.String()}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no Redis database among 1-15 could be claimed within a minute: each holds data, or another test's claim")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// claimKey, in a database NewPrivateRedis claimed, holds the claiming
// test's token; usedKey marks a database tests have used, so that what a
// killed run left behind can be told from data of anyone else's. They keep
// the name of the package they were first written in (redistest): they are
// data on a shared server, and a run of another branch, or a database a
// killed run left, must still be recognised.
const (
	claimKey = "cardimport:redistest:claim"
	usedKey  = "cardimport:redistest:used"
)

// claim tries to claim rc's database for token.
func claim(ctx context.Context, rc redis.UniversalClient, token string) bool {
	n, err := rc.DBSize(ctx).Result()
	if err != nil {
		return false // e.g. a server with fewer databases
	}
	used, err := rc.Exists(ctx, usedKey).Result()
	if err != nil || (n > 0 && used == 0) {
		return false // someone's data: touch nothing
	}
	if ok, err := rc.SetNX(ctx, claimKey, token, time.Hour).Result(); err != nil || !ok {
		return false // another test's
	}
	if used > 0 {
		// A run killed before its cleanup: its test keys go now.
		deleteTestKeys(ctx, rc)
	}
	if n, err := rc.DBSize(ctx).Result(); err != nil || n != 1+used {
		// Something besides the claim (and the mark): not ours to use.
		_ = releaseScript.Run(ctx, rc, []string{claimKey}, token).Err()
		return false
	}
	return rc.Set(ctx, usedKey, "1", 0).Err() == nil
}

// deleteTestKeys deletes from rc's database the keys tests write, but
// NewPrivateRedis's own claim.
func deleteTestKeys(ctx context.Context, rc redis.UniversalClient) {
	unlinkMatching(ctx, rc, []string{"asynq:*", "cardimport:*", "rate:cardimport:*"}, claimKey, usedKey)
}

// unlinkMatching deletes the keys matching any of patterns, but keep.
func unlinkMatching(ctx context.Context, rc redis.UniversalClient, patterns []string, keep ...string) {
	for _, pattern := range patterns {
		iter := rc.Scan(ctx, 0, pattern, 500).Iterator()
		for iter.Next(ctx) {
			if k := iter.Val(); !slices.Contains(keep, k) {
				_ = rc.Unlink(ctx, k).Err()
			}
		}
	}
}

// releaseScript deletes a claim only if it is still ours.
var releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// Queue returns a queue name no other test uses, and removes the queue and
// every key of it when the test ends.
func (r *Redis) Queue(tb testing.TB) string {
	tb.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := strings.NewReplacer("/", "-", " ", "_").Replace(tb.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	q := "test-" + name + "-" + hex.EncodeToString(b)
	tb.Cleanup(func() { r.dropQueue(q) })
	return q
}

// DropQueue removes every key of queue q at once, for benchmarks that fill
// a queue with more tasks than should wait for the end of the run.
func (r *Redis) DropQueue(q string) { r.dropQueue(q) }

// dropQueue removes every key of queue q: asynq's and the project's own
// (cardimport:{q}:…, e.g. dead letters and the guard's circuit, and the
// guard's rate limit, which redis_rate keeps under rate:cardimport:{q}:…). asynq's DeleteQueue leaves the
// completed tasks and the statistics behind, and with the queue gone no
// janitor ever expires them; queue names are unique, so deleting by the
// queue's key prefix touches nothing else.
func (r *Redis) dropQueue(q string) {
	insp := asynq.NewInspector(r.Opt)
	defer insp.Close()
	_ = insp.DeleteQueue(q, true)
	rc, err := redisconn.Client(r.Opt)
	if err != nil {
		return
	}
	defer rc.Close()
	unlinkMatching(context.Background(), rc, []string{"asynq:{" + q + "}:*", "cardimport:{" + q + "}:*", "rate:cardimport:{" + q + "}:*"})
}

// Context returns a context cancelled when the test ends.
func Context(tb testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	return ctx
}

// PendingImports returns the members waiting in queue by task ID: what a
// test checks after enqueueing. It fails tb unless every task is an import
// whose task ID is its payload's out_request_no.
func PendingImports(tb testing.TB, insp *asynq.Inspector, queue string) map[string]tasks.Payload {
	tb.Helper()
	got := map[string]tasks.Payload{}
	infos, err := insp.ListPendingTasks(queue, asynq.PageSize(1000))
	if errors.Is(err, asynq.ErrQueueNotFound) {
		return got
	}
	if err != nil {
		tb.Fatalf("list pending tasks: %v", err)
	}
	for _, info := range infos {
		if info.Type != tasks.TypeImport {
			tb.Fatalf("task %s: type %q, want %q", info.ID, info.Type, tasks.TypeImport)
		}
		p, err := tasks.DecodePayload(info.Payload)
		if err != nil {
			tb.Fatalf("task %s: %v", info.ID, err)
		}
		if p.OutRequestNo != info.ID {
			tb.Fatalf("task %s: out_request_no %s: the task ID is the out_request_no", info.ID, p.OutRequestNo)
		}
		got[info.ID] = p
	}
	return got
}

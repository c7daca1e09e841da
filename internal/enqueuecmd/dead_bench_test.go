package enqueuecmd

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/internal/importer"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/internal/wechatpay"
	"github.com/cardimport/cardimport/tasks"
)

// benchDeadLetters is the size of the "done when".
const benchDeadLetters = 12_000

// fillDeadLetters makes n members dead letters as the worker leaves them:
// each task archived by asynq (which keeps the last 9,999) and recorded.
func fillDeadLetters(b *testing.B, r *testkit.Redis, queue string, n int) {
	b.Helper()
	ctx := context.Background()
	s, err := deadletter.New(r.Opt, queue)
	require.NoError(b, err)
	defer s.Close()
	client := asynq.NewClient(r.Opt)
	defer client.Close()
	insp := asynq.NewInspector(r.Opt)
	defer insp.Close()
	refusal := &wechatpay.Error{Kind: wechatpay.KindPermanent, StatusCode: 403, Code: "NO_AUTH", Message: "商户无权限操作该卡券 (merchant is not the card's creator)", RequestID: "08F1C0A8B2E7064D1A2F3B4C5D6E7F80"}
	for i := range n {
		p := deadMember(i, "pNOAUTH-LatjvWOibDc5-TBnbUk1pD")
		task, err := tasks.NewImportTask(p, tasks.WithQueue(queue))
		require.NoError(b, err)
		if i >= n-9_999 {
			_, err = client.Enqueue(task)
			require.NoError(b, err)
			require.NoError(b, insp.ArchiveTask(queue, p.OutRequestNo))
		}
		rec := deadletter.FromFailure(p.OutRequestNo, task.Payload(), 1, importer.Refused(refusal), time.Now())
		require.NoError(b, s.Record(ctx, rec))
	}
}

// BenchmarkDeadList times `enqueue dead list --json` of 12,000 dead
// letters, its sweep of asynq's archive included, and reports the Redis
// memory one record takes (with REDIS_URL set; MEMORY USAGE of its hash
// plus its share of the index).
func BenchmarkDeadList(b *testing.B) {
	r := testkit.NewRedis(b)
	queue := r.Queue(b)
	fillDeadLetters(b, r, queue, benchDeadLetters)
	env := map[string]string{"REDIS_URL": r.URL}
	for b.Loop() {
		var stderr strings.Builder
		code := Run(context.Background(), []string{"dead", "list", "--json", "--queue", queue}, func(k string) string { return env[k] }, nil, io.Discard, &stderr)
		require.Equal(b, 0, code, stderr.String())
		require.Equal(b, fmt.Sprintf("listed=%d replayed=0\n", benchDeadLetters), stderr.String())
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/list")
	if r.Embedded == nil {
		b.ReportMetric(bytesPerRecord(b, r, queue), "redis-bytes/record")
	}
}

func bytesPerRecord(b *testing.B, r *testkit.Redis, queue string) float64 {
	rc := r.Opt.MakeRedisClient().(redis.UniversalClient)
	defer rc.Close()
	ctx := context.Background()
	index := "cardimport:{" + queue + "}:dead"
	total, err := rc.MemoryUsage(ctx, index, 0).Result()
	require.NoError(b, err)
	// Sample the record hashes: MEMORY USAGE of each of 12,000 keys would
	// time the benchmark, not the store.
	var sampled, n int64
	for i := 0; i < benchDeadLetters; i += 100 {
		m, err := rc.MemoryUsage(ctx, index+":"+deadMember(i, "").OutRequestNo).Result()
		require.NoError(b, err)
		sampled += m
		n++
	}
	return float64(total)/benchDeadLetters + float64(sampled)/float64(n)
}

// BenchmarkDeadReplay times `enqueue dead replay --all` of 12,000 dead
// letters (9,999 still in asynq's archive, deleted first; 2,001 trimmed
// from it), no worker running.
func BenchmarkDeadReplay(b *testing.B) {
	r := testkit.NewRedis(b)
	env := map[string]string{"REDIS_URL": r.URL}
	for b.Loop() {
		b.StopTimer()
		queue := r.Queue(b)
		fillDeadLetters(b, r, queue, benchDeadLetters)
		b.StartTimer()
		var stdout, stderr strings.Builder
		code := Run(context.Background(), []string{"dead", "replay", "--all", "--queue", queue}, func(k string) string { return env[k] }, nil, &stdout, &stderr)
		require.Equal(b, 0, code, stderr.String())
		require.Equal(b, fmt.Sprintf("replayed=%d skipped=0 failed=0\n", benchDeadLetters), stdout.String())
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/replay")
}

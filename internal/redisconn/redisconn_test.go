package redisconn_test

import (
	"context"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/redisconn"
	"github.com/cardimport/cardimport/internal/redistest"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		raw     string
		want    asynq.RedisConnOpt
		wantErr string
	}{
		{name: "db", raw: "redis://127.0.0.1:6379/2", want: redisconn.ClientOpt{RedisClientOpt: asynq.RedisClientOpt{Addr: "127.0.0.1:6379", DB: 2}}},
		{name: "password", raw: "redis://:pw@h:1/0", want: redisconn.ClientOpt{RedisClientOpt: asynq.RedisClientOpt{Addr: "h:1", Password: "pw"}}},
		{name: "sentinel", raw: "redis-sentinel://s1:26379,s2:26379?master=mymaster", want: asynq.RedisFailoverClientOpt{MasterName: "mymaster", SentinelAddrs: []string{"s1:26379", "s2:26379"}}},
		{name: "empty", raw: "", wantErr: "REDIS_URL: is required (redis://host:port/db)"},
		{name: "scheme", raw: "http://h:1", wantErr: `REDIS_URL: unsupported uri scheme: "http" (want redis://host:port/db, rediss://…, redis-sentinel://…)`},
		{name: "password never echoed", raw: "redis://:s3cret@h:port/0", wantErr: `REDIS_URL: invalid port ":port" after host (want redis://host:port/db, rediss://…, redis-sentinel://…)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := redisconn.Parse("REDIS_URL", tt.raw)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// TestClientsSpeakRESP2: the clients a parsed URL makes, asynq's included,
// talk RESP2 to the server.
func TestClientsSpeakRESP2(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	if r.Embedded != nil {
		t.Skip("the embedded server does not answer CLIENT INFO")
	}
	opt, err := redisconn.Parse("REDIS_URL", r.URL)
	require.NoError(t, err)
	rc, err := redisconn.Client(opt)
	require.NoError(t, err)
	defer rc.Close()
	info, err := rc.ClientInfo(context.Background()).Result()
	require.NoError(t, err)
	require.Equal(t, 2, info.Resp)
	asynqs, ok := opt.MakeRedisClient().(*redis.Client)
	require.True(t, ok)
	defer asynqs.Close()
	info, err = asynqs.ClientInfo(context.Background()).Result()
	require.NoError(t, err)
	require.Equal(t, 2, info.Resp)
}

func TestCheck(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	warnings, err := redisconn.Check(context.Background(), r.Opt)
	require.NoError(t, err)
	if r.Embedded != nil {
		require.Equal(t, []string{"redis did not report its version; asynq needs 6.2 or later"}, warnings)
	}
}

func TestCheckUnreachable(t *testing.T) {
	t.Parallel()
	_, err := redisconn.Check(context.Background(), asynq.RedisClientOpt{Addr: "127.0.0.1:1"})
	require.ErrorContains(t, err, "REDIS_URL: cannot reach redis:")
}

// TestCheckWarnsWhenRedisMayEvict changes the server's eviction policy, so
// it runs only against a real server and puts the policy back.
func TestCheckWarnsWhenRedisMayEvict(t *testing.T) {
	r := redistest.New(t)
	if r.Embedded != nil {
		t.Skip("the embedded server has no eviction policy")
	}
	rc := r.Opt.MakeRedisClient().(redis.UniversalClient)
	ctx := context.Background()
	before, err := rc.ConfigGet(ctx, "maxmemory-policy").Result()
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, rc.ConfigSet(ctx, "maxmemory-policy", before["maxmemory-policy"]).Err())
		_ = rc.Close()
	})
	require.NoError(t, rc.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err())

	warnings, err := redisconn.Check(ctx, r.Opt)
	require.NoError(t, err)
	require.Equal(t, []string{"redis maxmemory-policy is allkeys-lru: under memory pressure redis may evict queued imports; set it to noeviction"}, warnings)
}

// otherConn is a connection type asynq does not have.
type otherConn struct{}

func (otherConn) MakeRedisClient() any { return struct{}{} }

func TestClient(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	rc, err := redisconn.Client(r.Opt)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rc.Close() })
	require.NoError(t, rc.Ping(context.Background()).Err())

	_, err = redisconn.Client(otherConn{})
	require.EqualError(t, err, "unsupported redis connection redisconn_test.otherConn")
}

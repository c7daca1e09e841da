package redisconn_test

import (
	"context"
	"crypto/tls"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/redisconn"
	"github.com/cardimport/cardimport/internal/testkit"
)

func TestParse(t *testing.T) {
	t.Parallel()
	secure := &tls.Config{MinVersion: tls.VersionTLS12}
	tests := []struct {
		name    string
		raw     string
		want    asynq.RedisConnOpt
		wantErr string
	}{
		{name: "db", raw: "redis://127.0.0.1:6379/2", want: redisconn.ClientOpt{RedisClientOpt: asynq.RedisClientOpt{Addr: "127.0.0.1:6379", DB: 2}}},
		{name: "password", raw: "redis://:pw@h:1/0", want: redisconn.ClientOpt{RedisClientOpt: asynq.RedisClientOpt{Addr: "h:1", Password: "pw"}}},
		{name: "sentinel", raw: "redis-sentinel://s1:26379,s2:26379?master=mymaster",
			want: redisconn.FailoverOpt{RedisFailoverClientOpt: asynq.RedisFailoverClientOpt{MasterName: "mymaster", SentinelAddrs: []string{"s1:26379", "s2:26379"}}}},
		{name: "sentinel password and db", raw: "redis-sentinel://:p%40ss@10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/3?master=imports",
			want: redisconn.FailoverOpt{RedisFailoverClientOpt: asynq.RedisFailoverClientOpt{MasterName: "imports",
				SentinelAddrs: []string{"10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"}, DB: 3,
				Password: "p@ss", SentinelPassword: "p@ss"}}},
		{name: "sentinel user", raw: "redis-sentinel://app:pw@s1:26379/0?master=m",
			want: redisconn.FailoverOpt{RedisFailoverClientOpt: asynq.RedisFailoverClientOpt{MasterName: "m", SentinelAddrs: []string{"s1:26379"},
				Username: "app", Password: "pw", SentinelUsername: "app", SentinelPassword: "pw"}}},
		{name: "sentinels without a password", raw: "redis-sentinel://:pw@s1:26379?master=m&sentinel_password=",
			want: redisconn.FailoverOpt{RedisFailoverClientOpt: asynq.RedisFailoverClientOpt{MasterName: "m", SentinelAddrs: []string{"s1:26379"}, Password: "pw"}}},
		{name: "sentinel tls", raw: "rediss-sentinel://[::1]:26379,s2:26380?master=m",
			want: redisconn.FailoverOpt{RedisFailoverClientOpt: asynq.RedisFailoverClientOpt{MasterName: "m", SentinelAddrs: []string{"[::1]:26379", "s2:26380"}, TLSConfig: secure}}},
		{name: "cluster", raw: "redis-cluster://n1:7000,n2:7001,n3:7002",
			want: redisconn.ClusterOpt{RedisClusterClientOpt: asynq.RedisClusterClientOpt{Addrs: []string{"n1:7000", "n2:7001", "n3:7002"}}}},
		{name: "cluster password db 0", raw: "redis-cluster://:pw@n1:7000/0",
			want: redisconn.ClusterOpt{RedisClusterClientOpt: asynq.RedisClusterClientOpt{Addrs: []string{"n1:7000"}, Password: "pw"}}},
		{name: "cluster tls", raw: "rediss-cluster://u:pw@n1:7000,n2:7000/",
			want: redisconn.ClusterOpt{RedisClusterClientOpt: asynq.RedisClusterClientOpt{Addrs: []string{"n1:7000", "n2:7000"}, Username: "u", Password: "pw", TLSConfig: secure}}},
		{name: "empty", raw: "", wantErr: "REDIS_URL: is required (redis://host:port/db)"},
		{name: "scheme", raw: "http://h:1", wantErr: `REDIS_URL: unsupported uri scheme: "http" (want ` + redisconn.Forms + ")"},
		{name: "sentinel without master", raw: "redis-sentinel://:s3cret@s1:26379", wantErr: "REDIS_URL: redis-sentinel: master: is required (?master=NAME, the name the sentinels monitor)"},
		{name: "sentinel bad db", raw: "redis-sentinel://s1:26379/x?master=m", wantErr: "REDIS_URL: redis-sentinel: database: the path must be a database number (/0)"},
		{name: "sentinel unknown parameter", raw: "redis-sentinel://s1:26379?master=m&password=s3cret", wantErr: `REDIS_URL: redis-sentinel: unknown parameter "password" (want master, sentinel_password)`},
		{name: "cluster db", raw: "redis-cluster://n1:7000/2", wantErr: "REDIS_URL: redis-cluster: database: a cluster has only database 0"},
		{name: "cluster parameter", raw: "redis-cluster://n1:7000?master=m", wantErr: `REDIS_URL: redis-cluster: unknown parameter "master" (this form takes none)`},
		{name: "cluster no host", raw: "redis-cluster://:s3cret@/", wantErr: "REDIS_URL: redis-cluster: no host:port"},
		{name: "cluster empty host", raw: "redis-cluster://n1:7000,", wantErr: "REDIS_URL: redis-cluster: host 2: want host:port"},
		// Passwords a mistyped URL would show if errors quoted it.
		{name: "password never echoed: port", raw: "redis://:s3cret@h:port/0", wantErr: "REDIS_URL: invalid port after host (want " + redisconn.Forms + ")"},
		{name: "password never echoed: missing @", raw: "redis://user:s3cret/0", wantErr: "REDIS_URL: invalid port after host (want " + redisconn.Forms + ")"},
		{name: "password never echoed: escape", raw: "redis://:s3cret%zz@h:1/0", wantErr: "REDIS_URL: invalid URL escape (want " + redisconn.Forms + ")"},
		{name: "password never echoed: cluster missing @", raw: "redis-cluster://user:s3cret,n2:7000", wantErr: "REDIS_URL: redis-cluster: host 1: port must be a number from 1 to 65535"},
		{name: "password never echoed: cluster escape", raw: "redis-cluster://:s3cret%zz@n1:7000", wantErr: "REDIS_URL: redis-cluster: password: invalid percent-encoding"},
		{name: "password never echoed: sentinel query", raw: "redis-sentinel://s1:26379?master=m&sentinel_password=s3cret%zz", wantErr: "REDIS_URL: redis-sentinel: query: invalid encoding"},
		{name: "password never echoed: sentinel port", raw: "redis-sentinel://:s3cret@s1:s3cret?master=m", wantErr: "REDIS_URL: redis-sentinel: host 1: port must be a number from 1 to 65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := redisconn.Parse("REDIS_URL", tt.raw)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), "s3cret")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// TestClientsOfEveryForm: each form makes the go-redis client asynq and
// this project need, speaking RESP2, and retrying through a failover.
func TestClientsOfEveryForm(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"redis-sentinel://127.0.0.1:1?master=m", "redis-cluster://127.0.0.1:1"} {
		opt, err := redisconn.Parse("REDIS_URL", raw)
		require.NoError(t, err)
		rc, err := redisconn.Client(opt)
		require.NoError(t, err)
		switch c := rc.(type) {
		case *redis.Client:
			require.Equal(t, 2, c.Options().Protocol)
			require.Equal(t, redisconn.FailoverRetries, c.Options().MaxRetries)
		case *redis.ClusterClient:
			require.Equal(t, 2, c.Options().Protocol)
			require.Equal(t, redisconn.ClusterStateReload, c.Options().ClusterStateReloadInterval)
		default:
			t.Fatalf("%s: %T", raw, rc)
		}
		require.NoError(t, rc.Close())
	}
}

// TestClientsSpeakRESP2: the clients a parsed URL makes, asynq's included,
// talk RESP2 to the server.
func TestClientsSpeakRESP2(t *testing.T) {
	t.Parallel()
	r := testkit.NewRedis(t)
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
	r := testkit.NewRedis(t)
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
	r := testkit.NewRedis(t)
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
	r := testkit.NewRedis(t)
	rc, err := redisconn.Client(r.Opt)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rc.Close() })
	require.NoError(t, rc.Ping(context.Background()).Err())

	_, err = redisconn.Client(otherConn{})
	require.EqualError(t, err, "unsupported redis connection redisconn_test.otherConn")
}

// Package redisconn turns REDIS_URL into asynq's connection options — one
// server, the master Redis Sentinel names, or a Redis Cluster — and
// checks, at start, that the servers can carry the queue: asynq's Lua
// scripts need Redis 6.2 or later, and a server that may evict keys can
// silently drop queued imports.
//
// Every key the project keeps carries its queue in braces, as asynq's own
// keys do ("cardimport:{QUEUE}:dead", "asynq:{QUEUE}:pending"): on a
// cluster a queue's keys share one hash slot, so one script or
// transaction may touch them all, and a queue lives on one master.
package redisconn

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Forms is the list of URL forms Parse takes, for messages.
const Forms = "redis://host:port/db, rediss://…, redis-socket://…, redis-sentinel://host:port,…/db?master=NAME, redis-cluster://host:port,…"

// Parse reads a Redis URL given by source, the variable or flag it came
// from:
//
//	redis://[[user]:password@]host:port[/db]         one server (rediss:// with TLS)
//	redis-socket://[[user]:password@]/path?db=N      one server on a Unix socket
//	redis-sentinel://[[user]:password@]host:port[,host:port…][/db]?master=NAME[&sentinel_password=P]
//	                                                 the master Sentinel names (rediss-sentinel:// with TLS)
//	redis-cluster://[[user]:password@]host:port[,host:port…]
//	                                                 a Redis Cluster, from any of its nodes (rediss-cluster:// with TLS)
//
// Its errors name source and never repeat the URL or any part of it that
// may hold a password.
func Parse(source, raw string) (asynq.RedisConnOpt, error) {
	if raw == "" {
		return nil, fmt.Errorf("%s: is required (redis://host:port/db)", source)
	}
	scheme, _, _ := strings.Cut(raw, "://")
	switch scheme {
	case "redis-sentinel", "rediss-sentinel", "redis-cluster", "rediss-cluster":
		m, err := parseMultiHost(raw)
		var opt asynq.RedisConnOpt
		if err == nil && strings.HasSuffix(scheme, "-sentinel") {
			opt, err = parseSentinel(m)
		} else if err == nil {
			opt, err = parseCluster(m)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", source, scheme, err)
		}
		return opt, nil
	}
	opt, err := asynq.ParseRedisURI(raw)
	if err != nil {
		// url.Error quotes the whole URL, password included; its cause
		// quotes the part it could not read, which may be a password
		// when the '@' is missing.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		msg := strings.TrimPrefix(err.Error(), "asynq: ")
		if !strings.HasPrefix(msg, "unsupported uri scheme") {
			msg = quoted.ReplaceAllString(msg, "")
		}
		return nil, fmt.Errorf("%s: %s (want %s)", source, strings.Join(strings.Fields(msg), " "), Forms)
	}
	if single, ok := opt.(asynq.RedisClientOpt); ok {
		return ClientOpt{single}, nil
	}
	return opt, nil
}

// quoted matches a quoted part of an error message.
var quoted = regexp.MustCompile(`"[^"]*"`)

// ClientOpt connects to a single Redis server as asynq's RedisClientOpt
// does, but its clients speak RESP2. Nothing here needs RESP3 (asynq,
// redis_rate and this project send plain commands and Lua scripts), and on
// a RESP3 connection go-redis looks for push notifications before every
// reply it reads: about 2% of a busy worker's CPU. Parse returns it for
// redis://, rediss:// and redis-socket:// URLs.
type ClientOpt struct{ asynq.RedisClientOpt }

// MakeRedisClient implements asynq.RedisConnOpt.
func (o ClientOpt) MakeRedisClient() any {
	return redis.NewClient(&redis.Options{
		Network:      o.Network,
		Addr:         o.Addr,
		Username:     o.Username,
		Password:     o.Password,
		DB:           o.DB,
		DialTimeout:  o.DialTimeout,
		ReadTimeout:  o.ReadTimeout,
		WriteTimeout: o.WriteTimeout,
		PoolSize:     o.PoolSize,
		TLSConfig:    o.TLSConfig,
		Protocol:     2,
	})
}

// Client returns the go-redis client opt makes, for the parts that keep
// keys of their own next to asynq's (dead letters, the guard's state). The
// caller closes it. Every connection type asynq has makes one; the error
// is for a type it may add.
func Client(opt asynq.RedisConnOpt) (redis.UniversalClient, error) {
	rc, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, fmt.Errorf("unsupported redis connection %T", opt)
	}
	return rc, nil
}

// MinVersion is the oldest Redis asynq's scripts run on.
const MinVersion = "6.2"

// Check connects to the server and verifies its version. It returns
// warnings an operator should see (eviction policy) and an error naming
// REDIS_URL when the server cannot be used. A server that does not report
// its version (an embedded one) is accepted. On a cluster every node is
// checked, and a cluster that does not report itself ok is refused.
func Check(ctx context.Context, opt asynq.RedisConnOpt) (warnings []string, err error) {
	rc, err := Client(opt)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	defer rc.Close()
	if err := rc.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("REDIS_URL: cannot reach redis: %w", err)
	}
	cluster, ok := rc.(*redis.ClusterClient)
	if !ok {
		return checkServer(ctx, rc)
	}
	info, err := cluster.ClusterInfo(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: cluster info: %w", err)
	}
	if state := infoField(info, "cluster_state"); state != "ok" {
		return nil, fmt.Errorf("REDIS_URL: the cluster's state is %q, not ok", state)
	}
	var mu sync.Mutex
	err = cluster.ForEachShard(ctx, func(ctx context.Context, node *redis.Client) error {
		w, err := checkServer(ctx, node)
		mu.Lock()
		defer mu.Unlock()
		for _, x := range w {
			if !slices.Contains(warnings, x) {
				warnings = append(warnings, x)
			}
		}
		return err
	})
	return warnings, err
}

// checkServer checks one server.
func checkServer(ctx context.Context, rc redis.UniversalClient) (warnings []string, err error) {
	// Some servers (an embedded one, some managed offerings) do not
	// answer INFO server; they get a warning rather than a refusal.
	info, err := rc.Info(ctx, "server").Result()
	version := infoField(info, "redis_version")
	switch {
	case err != nil || version == "":
		warnings = append(warnings, "redis did not report its version; asynq needs "+MinVersion+" or later")
	case !atLeast(version, MinVersion):
		return nil, fmt.Errorf("REDIS_URL: redis %s is older than %s, which asynq's scripts need", version, MinVersion)
	}
	if policy, err := rc.ConfigGet(ctx, "maxmemory-policy").Result(); err == nil {
		if p := policy["maxmemory-policy"]; p != "" && p != "noeviction" {
			warnings = append(warnings, fmt.Sprintf("redis maxmemory-policy is %s: under memory pressure redis may evict queued imports; set it to noeviction", p))
		}
	}
	return warnings, nil
}

func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// atLeast compares dotted version numbers.
func atLeast(version, minimum string) bool {
	a, b := strings.Split(version, "."), strings.Split(minimum, ".")
	for i := range b {
		var x, y int
		if i < len(a) {
			x, _ = strconv.Atoi(a[i])
		}
		y, _ = strconv.Atoi(b[i])
		if x != y {
			return x > y
		}
	}
	return true
}

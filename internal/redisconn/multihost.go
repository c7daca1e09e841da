package redisconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// A failover (Sentinel promoting a replica, or a cluster's replica taking
// over its master's slots) takes seconds, during which the master does not
// answer. The clients of sentinel and cluster URLs retry a command through
// that window instead of failing it, so that an `enqueue file` or an intake
// request in progress carries on: FailoverRetries retries, backing off from
// FailoverMinBackoff to FailoverMaxBackoff, span about 15 s on a refused
// connection (measured by the fault suite). A Sentinel whose
// down-after-milliseconds, or a cluster whose cluster-node-timeout, is
// longer than a few seconds needs more: see docs/deployment.md.
const (
	FailoverRetries    = 16
	FailoverMinBackoff = 100 * time.Millisecond
	FailoverMaxBackoff = time.Second
)

// ClusterStateReload is how stale a cluster client's map of slots to
// masters may get. go-redis learns a new master from a MOVED answer, which
// a dead master never sends; by default it reloads the map only every 60 s,
// so for a minute after a failover it would go on dialling the dead
// master. One CLUSTER SLOTS every 2 s per process costs nothing.
const ClusterStateReload = 2 * time.Second

// FailoverOpt connects through Redis Sentinel as asynq's
// RedisFailoverClientOpt does, but speaks RESP2 (see ClientOpt) and retries
// a command through a failover. Parse returns it for redis-sentinel:// and
// rediss-sentinel:// URLs.
type FailoverOpt struct{ asynq.RedisFailoverClientOpt }

// MakeRedisClient implements asynq.RedisConnOpt.
func (o FailoverOpt) MakeRedisClient() any {
	return redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:       o.MasterName,
		SentinelAddrs:    o.SentinelAddrs,
		SentinelUsername: o.SentinelUsername,
		SentinelPassword: o.SentinelPassword,
		Username:         o.Username,
		Password:         o.Password,
		DB:               o.DB,
		DialTimeout:      o.DialTimeout,
		ReadTimeout:      o.ReadTimeout,
		WriteTimeout:     o.WriteTimeout,
		PoolSize:         o.PoolSize,
		TLSConfig:        o.TLSConfig,
		Protocol:         2,
		MaxRetries:       FailoverRetries,
		MinRetryBackoff:  FailoverMinBackoff,
		MaxRetryBackoff:  FailoverMaxBackoff,
	})
}

// ClusterOpt connects to a Redis Cluster as asynq's RedisClusterClientOpt
// does, but speaks RESP2 (see ClientOpt), retries a command through a
// failover and reloads the cluster's slot map every ClusterStateReload.
// Parse returns it for redis-cluster:// and rediss-cluster:// URLs.
type ClusterOpt struct{ asynq.RedisClusterClientOpt }

// MakeRedisClient implements asynq.RedisConnOpt.
func (o ClusterOpt) MakeRedisClient() any {
	c := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                      o.Addrs,
		Username:                   o.Username,
		Password:                   o.Password,
		DialTimeout:                o.DialTimeout,
		ReadTimeout:                o.ReadTimeout,
		WriteTimeout:               o.WriteTimeout,
		TLSConfig:                  o.TLSConfig,
		Protocol:                   2,
		MaxRedirects:               FailoverRetries,
		MinRetryBackoff:            FailoverMinBackoff,
		MaxRetryBackoff:            FailoverMaxBackoff,
		ClusterStateReloadInterval: ClusterStateReload,
	})
	c.AddHook(serverStateHook{})
	return c
}

// ServerStateTimeout bounds a write of asynq's server state on a cluster.
//
// asynq's heartbeater writes each worker's server state (asynq:servers,
// asynq:workers and the server's own two keys, which live on whichever
// master their names hash to, not on any queue's) every 5 s, and its
// processor hands every task's start and end to the heartbeater over
// unbuffered channels (asynq v0.26, server.go). While the master holding
// those keys is being failed over, a write retried through the failover
// would hold every task start of the worker, on every queue, for as long.
// The state only feeds the dashboard's list of servers and expires on its
// own; a write that gives up after ServerStateTimeout costs a line in the
// log, and the imports on the other masters go on.
const ServerStateTimeout = 500 * time.Millisecond

// serverStateHook bounds the commands that write asynq's server state.
type serverStateHook struct{}

func (serverStateHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (serverStateHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (serverStateHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !isServerState(cmd) {
			return next(ctx, cmd)
		}
		ctx, cancel := context.WithTimeout(ctx, ServerStateTimeout)
		defer cancel()
		return next(ctx, cmd)
	}
}

// isServerState reports whether cmd's first key is one of asynq's server
// state keys: asynq:servers, asynq:workers, asynq:servers:{…} and
// asynq:workers:{…}.
func isServerState(cmd redis.Cmder) bool {
	args := cmd.Args()
	pos := 1
	switch strings.ToLower(cmd.Name()) {
	case "eval", "evalsha", "eval_ro", "evalsha_ro":
		pos = 3
	}
	if len(args) <= pos {
		return false
	}
	key, ok := args[pos].(string)
	return ok && (strings.HasPrefix(key, "asynq:servers") || strings.HasPrefix(key, "asynq:workers"))
}

// multiHost is a URL naming several servers, as
// scheme://[user[:password]@]host:port[,host:port…][/path][?query]: Go's
// url.Parse does not take a list of hosts, and its errors quote the whole
// URL, password included.
type multiHost struct {
	scheme, username, password string
	addrs                      []string
	path                       string
	query                      url.Values
}

// parseMultiHost splits raw. Its errors never hold the user or password.
func parseMultiHost(raw string) (multiHost, error) {
	var m multiHost
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return m, errors.New("missing scheme://")
	}
	m.scheme = scheme
	rest, rawQuery, _ := strings.Cut(rest, "?")
	authority, path, _ := strings.Cut(rest, "/")
	m.path = path
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		userinfo := authority[:at]
		authority = authority[at+1:]
		user, password, _ := strings.Cut(userinfo, ":")
		var err error
		if m.username, err = url.PathUnescape(user); err != nil {
			return m, errors.New("user: invalid percent-encoding")
		}
		if m.password, err = url.PathUnescape(password); err != nil {
			return m, errors.New("password: invalid percent-encoding")
		}
	}
	if authority == "" {
		return m, errors.New("no host:port")
	}
	for i, addr := range strings.Split(authority, ",") {
		// The address is not quoted: a URL missing its '@' would
		// show its password here.
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" {
			return m, fmt.Errorf("host %d: want host:port", i+1)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return m, fmt.Errorf("host %d: port must be a number from 1 to 65535", i+1)
		}
		m.addrs = append(m.addrs, addr)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		// ParseQuery's error quotes the query, which may hold a
		// password.
		return m, errors.New("query: invalid encoding")
	}
	m.query = q
	return m, nil
}

// knownParams refuses a parameter it does not name; the message names the
// parameter, never its value.
func (m multiHost) knownParams(names ...string) error {
	for k := range m.query {
		switch {
		case len(names) == 0:
			return fmt.Errorf("unknown parameter %q (this form takes none)", k)
		case !slices.Contains(names, k):
			return fmt.Errorf("unknown parameter %q (want %s)", k, strings.Join(names, ", "))
		}
	}
	return nil
}

// tlsConfig is the TLS of a rediss-… URL. Its ServerName is empty, so
// that each connection checks the name of the host it dials (crypto/tls
// takes it from the address), as one name cannot fit several servers.
func tlsConfig(secure bool) *tls.Config {
	if !secure {
		return nil
	}
	return &tls.Config{MinVersion: tls.VersionTLS12}
}

// parseSentinel reads
// redis-sentinel://[[user]:password@]host:port[,host:port…][/db]?master=NAME[&sentinel_password=P]:
// the addresses are the sentinels'; the password is the Redis servers',
// and the sentinels' too unless sentinel_password says otherwise (empty
// for sentinels without one). asynq's own parser takes the password for
// the sentinels' only and drops the database; a deployment where the
// sentinels and the servers share a password, the common one, needs both.
func parseSentinel(m multiHost) (asynq.RedisConnOpt, error) {
	if err := m.knownParams("master", "sentinel_password"); err != nil {
		return nil, err
	}
	master := m.query.Get("master")
	if master == "" {
		return nil, errors.New("master: is required (?master=NAME, the name the sentinels monitor)")
	}
	db := 0
	if p := strings.Trim(m.path, "/"); p != "" {
		var err error
		if db, err = strconv.Atoi(p); err != nil || db < 0 {
			return nil, errors.New("database: the path must be a database number (/0)")
		}
	}
	opt := asynq.RedisFailoverClientOpt{
		MasterName:       master,
		SentinelAddrs:    m.addrs,
		SentinelUsername: m.username,
		SentinelPassword: m.password,
		Username:         m.username,
		Password:         m.password,
		DB:               db,
		TLSConfig:        tlsConfig(m.scheme == "rediss-sentinel"),
	}
	if m.query.Has("sentinel_password") {
		opt.SentinelUsername = ""
		opt.SentinelPassword = m.query.Get("sentinel_password")
	}
	return FailoverOpt{opt}, nil
}

// parseCluster reads redis-cluster://[[user]:password@]host:port[,host:port…]:
// any of the cluster's nodes, from which the client learns the rest. A
// cluster has only database 0.
func parseCluster(m multiHost) (asynq.RedisConnOpt, error) {
	if err := m.knownParams(); err != nil {
		return nil, err
	}
	if p := strings.Trim(m.path, "/"); p != "" && p != "0" {
		return nil, errors.New("database: a cluster has only database 0")
	}
	return ClusterOpt{asynq.RedisClusterClientOpt{
		Addrs:     m.addrs,
		Username:  m.username,
		Password:  m.password,
		TLSConfig: tlsConfig(m.scheme == "rediss-cluster"),
	}}, nil
}

package redisconn

import (
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// FailoverWindow is how long the clients of sentinel and cluster URLs
// retry a command or transaction that the master did not carry out
// because it could not be reached or was being failed over, instead of
// failing it: a failover (Sentinel promoting a replica, a cluster's replica
// taking over its master's slots) takes seconds, and an `enqueue file` or
// an intake request in progress should carry on through it. A Sentinel
// whose down-after-milliseconds, or a cluster whose cluster-node-timeout,
// is more than a few seconds fails over more slowly than that: see
// docs/deployment.md.
const FailoverWindow = 20 * time.Second

// The sentinel client's retries: a new connection asks the sentinels for
// the master, so go-redis's own retries find the new one. FailoverRetries
// retries, backing off from FailoverMinBackoff to FailoverMaxBackoff, each
// with go-redis's five quick dial attempts, span about FailoverWindow.
const (
	FailoverRetries    = 16
	FailoverMinBackoff = 100 * time.Millisecond
	FailoverMaxBackoff = time.Second
)

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

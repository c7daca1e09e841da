package redisconn

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// ClusterStateReload is how stale a cluster client's map of slots to
// masters may get. go-redis learns a new master from a MOVED answer, which
// a dead master never sends; by default it reloads the map only every 60 s,
// so for a minute after a failover it would go on dialling the dead
// master. One CLUSTER SLOTS every 2 s per process costs nothing.
const ClusterStateReload = 2 * time.Second

// clusterRedirects is go-redis's own retries of a cluster command (it
// follows MOVED at once): few, because go-redis retries a transaction on
// the node it first chose, however long, and the failover hook retries
// with a fresh slot map instead.
const clusterRedirects = 3

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

// ClusterOpt connects to a Redis Cluster as asynq's RedisClusterClientOpt
// does, but speaks RESP2 (see ClientOpt), reloads the cluster's slot map
// every ClusterStateReload, and retries a command or transaction through a
// failover with a fresh slot map (see failoverHook). Parse returns it for
// redis-cluster:// and rediss-cluster:// URLs.
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
		MaxRedirects:               clusterRedirects,
		ClusterStateReloadInterval: ClusterStateReload,
	})
	c.AddHook(&failoverHook{c: c, window: FailoverWindow})
	return c
}

// failoverHook retries, for up to window, a command or a pipeline that
// the cluster did not carry out because the master of its slot could not
// be dialled or answered that it cannot serve now (CLUSTERDOWN,
// MASTERDOWN, TRYAGAIN, LOADING, READONLY, NOREPLICAS): nothing of it ran,
// so running it again is safe. Before each try it reloads the slot map
// and waits for it: go-redis sends a transaction to the node its map
// named when the transaction began, and on a refused connection retries
// that node until its own retries run out, so a transaction begun before
// the client learnt of a failover would fail. A pipeline is tried again
// only when none of its commands ran. asynq's server-state writes are
// tried once, within ServerStateTimeout.
type failoverHook struct {
	c      *redis.ClusterClient
	window time.Duration
}

func (h *failoverHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *failoverHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if isServerState(cmd) {
			ctx, cancel := context.WithTimeout(ctx, ServerStateTimeout)
			defer cancel()
			return next(ctx, cmd)
		}
		return h.retry(ctx, func() error { return next(ctx, cmd) }, func() bool { return notCarriedOut(cmd.Err()) })
	}
}

func (h *failoverHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		return h.retry(ctx, func() error { return next(ctx, cmds) }, func() bool {
			for _, cmd := range cmds {
				// A transaction's MULTI and EXEC, which the hook sees
				// around it, carry no error of their own.
				if name := cmd.Name(); name != "multi" && name != "exec" && !notCarriedOut(cmd.Err()) {
					return false
				}
			}
			return true
		})
	}
}

// retry runs try until it succeeds, fails otherwise than retryable says,
// the window has passed or ctx is done.
func (h *failoverHook) retry(ctx context.Context, try func() error, retryable func() bool) error {
	deadline := time.Now().Add(h.window)
	backoff := FailoverMinBackoff
	for {
		err := try()
		if err == nil || !retryable() || time.Now().Add(backoff).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, FailoverMaxBackoff)
		// ForEachMaster reloads the slot map before it returns.
		_ = h.c.ForEachMaster(ctx, func(context.Context, *redis.Client) error { return nil })
	}
}

// notCarriedOut reports whether err says the server never ran the
// command: the connection could not be made, or the server refused it
// for the state of the cluster or of its replication.
func notCarriedOut(err error) bool {
	if err == nil {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	for _, prefix := range []string{"CLUSTERDOWN", "MASTERDOWN", "TRYAGAIN", "LOADING", "READONLY", "NOREPLICAS"} {
		if strings.HasPrefix(err.Error(), prefix) {
			return true
		}
	}
	return false
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

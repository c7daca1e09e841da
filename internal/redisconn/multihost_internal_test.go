package redisconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func TestIsServerState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		cmd  redis.Cmder
		want bool
	}{
		{name: "servers zset", cmd: redis.NewIntCmd(ctx, "zadd", "asynq:servers", 1, "m"), want: true},
		{name: "workers zset", cmd: redis.NewIntCmd(ctx, "zadd", "asynq:workers", 1, "m"), want: true},
		{name: "server state script", cmd: redis.NewCmd(ctx, "evalsha", "abc", 2, "asynq:servers:{h:1:id}", "asynq:workers:{h:1:id}", 10), want: true},
		{name: "queue script", cmd: redis.NewCmd(ctx, "evalsha", "abc", 1, "asynq:{q}:pending"), want: false},
		{name: "queue key", cmd: redis.NewIntCmd(ctx, "zcard", "asynq:{q}:completed"), want: false},
		{name: "keyless", cmd: redis.NewStatusCmd(ctx, "ping"), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, isServerState(tt.cmd))
		})
	}
}

func TestNotCarriedOut(t *testing.T) {
	t.Parallel()
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	read := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "nil", err: nil, want: false},
		{name: "dial", err: dial, want: true},
		{name: "wrapped dial", err: fmt.Errorf("results: count enqueued: %w", dial), want: true},
		{name: "read: the command may have run", err: read, want: false},
		{name: "clusterdown", err: errors.New("CLUSTERDOWN The cluster is down"), want: true},
		{name: "noreplicas", err: errors.New("NOREPLICAS Not enough good replicas to write."), want: true},
		{name: "readonly", err: errors.New("READONLY You can't write against a read only replica."), want: true},
		{name: "script error", err: errors.New("ERR Error running script"), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, notCarriedOut(tt.err))
		})
	}
}

package redisconn

import (
	"context"
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

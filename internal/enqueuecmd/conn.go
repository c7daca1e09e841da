package enqueuecmd

import (
	"context"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/internal/redisconn"
	"github.com/cardimport/cardimport/results"
	"github.com/cardimport/cardimport/tasks"
)

// conn is a subcommand's connection to Redis: one go-redis client, on
// which the asynq client and inspector and the stores of the queue are
// built, so that close closes everything.
type conn struct {
	rdb   redis.UniversalClient
	queue string
	insp  *asynq.Inspector
}

// connect makes the client where the flags (or REDIS_URL) point, without
// reaching Redis yet: the one way every subcommand gets there. Its errors
// never repeat the URL.
func (f *cmdFlags) connect(c *cli) (*conn, error) {
	connOpt, err := f.redis.connOpt(c.getenv)
	if err != nil {
		return nil, err
	}
	rdb, err := redisconn.Client(connOpt)
	if err != nil {
		return nil, err
	}
	return &conn{rdb: rdb, queue: f.redis.queue}, nil
}

// open is connect, then a check that Redis answers: a command that needs
// Redis says plainly that it cannot reach it, not what its first command
// made of that.
func (f *cmdFlags) open(ctx context.Context, c *cli) (*conn, error) {
	cn, err := f.connect(c)
	if err != nil {
		return nil, err
	}
	if err := cn.ping(ctx); err != nil {
		cn.close()
		return nil, err
	}
	return cn, nil
}

// openResults is open, and the results store of the queue: what enqueue
// one, runs and results work with.
func (f *cmdFlags) openResults(ctx context.Context, c *cli) (*conn, *results.Store, error) {
	cn, err := f.open(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	rs, err := cn.results()
	if err != nil {
		cn.close()
		return nil, nil, err
	}
	return cn, rs, nil
}

func (cn *conn) close() { _ = cn.rdb.Close() }

// ping checks that Redis answers.
func (cn *conn) ping(ctx context.Context) error {
	if err := cn.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// inspector returns the asynq inspector on the connection.
func (cn *conn) inspector() *asynq.Inspector {
	if cn.insp == nil {
		cn.insp = asynq.NewInspectorFromRedisClient(cn.rdb)
	}
	return cn.insp
}

// producer returns a producer that enqueues through the connection.
func (cn *conn) producer(opts ...tasks.ProducerOption) (*tasks.Producer, error) {
	return tasks.NewProducer(asynq.NewClientFromRedisClient(cn.rdb), opts...)
}

// results returns the results store of the queue.
func (cn *conn) results() (*results.Store, error) { return results.New(cn.rdb, cn.queue) }

// dead returns the dead-letter store of the queue.
func (cn *conn) dead() (*deadletter.Store, error) {
	return deadletter.NewFromRedisClient(cn.rdb, cn.queue)
}

package tasks_test

import (
	"context"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"

	"github.com/cardimport/cardimport/tasks"
)

// A Go registration system enqueues each member as it signs up, and
// nightly batches with EnqueueMany. Handing over the same out_request_no
// again is a duplicate, not a second import, so a producer that is not sure
// whether its last call went through simply calls again.
func ExampleProducer() {
	// An embedded Redis keeps the example self-contained; a real system
	// passes asynq.RedisClientOpt{Addr: ...} or asynq.ParseRedisURI(REDIS_URL).
	redis, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer redis.Close()
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: redis.Addr()})
	defer client.Close()

	producer, err := tasks.NewProducer(client, tasks.WithTaskOptions(tasks.WithQueue("membercard")))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	member := tasks.Payload{CardID: "pbLatjvWOibDc5-TBnbUk1pD12o0", OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", OutRequestNo: "1900000001-20261128-000001"}

	duplicate, err := producer.Enqueue(ctx, member)
	fmt.Println("first:", duplicate, err)
	duplicate, err = producer.Enqueue(ctx, member)
	fmt.Println("again:", duplicate, err)

	results, err := producer.EnqueueMany(ctx, []tasks.Payload{
		{CardID: "pbLatjvWOibDc5-TBnbUk1pD12o0", OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6p", OutRequestNo: "1900000001-20261128-000002"},
		{CardID: "pbLatjvWOibDc5-TBnbUk1pD12o0", OutRequestNo: "1900000001-20261128-000003"},
		member,
	})
	if err != nil {
		panic(err) // Redis could not be reached; sending the batch again is safe
	}
	for _, r := range results {
		fmt.Printf("member %d: duplicate=%v err=%v\n", r.Index, r.Duplicate, r.Err)
	}
	// Output:
	// first: false <nil>
	// again: true <nil>
	// member 0: duplicate=false err=<nil>
	// member 1: duplicate=false err=openid: is required
	// member 2: duplicate=true err=<nil>
}

package results_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/cardimport/cardimport/results"
	"github.com/cardimport/cardimport/tasks"
)

// A registration system follows the queue's outcomes as they come and
// stores each member's card code against its member. An event is
// acknowledged only once the callback returned nil, so a follower that dies
// between reading an event and storing it gets the event again when it
// starts with the same group and consumer names: storing must be
// idempotent (an upsert by out_request_no), never "insert once".
func ExampleFollower_Follow() {
	// An embedded Redis keeps the example self-contained; a real system
	// connects to the workers' Redis: redis.ParseURL(REDIS_URL).
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	const queue = "membercard"
	settleLikeTheWorker(rdb, queue, "nightly-2026-12-04", []results.Event{
		{OutRequestNo: "1900000001-20261204-000001", Outcome: results.OutcomeImported, Code: "880000000001"},
		{OutRequestNo: "1900000001-20261204-000002", Outcome: results.OutcomeAlreadyMember, Code: "880000000002"},
		{OutRequestNo: "1900000001-20261204-000003", Outcome: results.OutcomeDead, Reason: tasks.ReasonPermanent,
			HTTPStatus: 400, WeChatCode: "INVALID_REQUEST", Message: "用户近一年无微信支付交易，不满足导入条件"},
	})

	// One group per registration system; one consumer name per process,
	// the same after a restart (the host name, say).
	follower, err := results.NewFollower(rdb, queue, "registration", "host-1")
	if err != nil {
		panic(err)
	}
	follower.Block = 100 * time.Millisecond // how soon Follow notices ctx ended
	ctx, stop := context.WithCancel(context.Background())
	stored := make(chan string)
	followed := make(chan error)
	go func() {
		followed <- follower.Follow(ctx, func(ctx context.Context, e results.Event) error {
			// Store the outcome against the member here; an error leaves
			// the event unacknowledged and stops Follow.
			switch e.Outcome {
			case results.OutcomeDead:
				fmt.Printf("%s %s run=%s wechat_code=%s message=%s\n", e.OutRequestNo, e.Outcome, e.Run, e.WeChatCode, e.Message)
			default:
				fmt.Printf("%s %s run=%s code=%s\n", e.OutRequestNo, e.Outcome, e.Run, e.Code)
			}
			stored <- e.OutRequestNo
			return nil
		})
	}()

	// A real follower runs until it is stopped (signal.NotifyContext);
	// this one stops once it stored all three and acknowledged them.
	for range 3 {
		<-stored
	}
	waitAcknowledged(rdb, queue, "registration")
	stop()
	fmt.Println("follow:", <-followed)
	// Output:
	// 1900000001-20261204-000001 imported run=nightly-2026-12-04 code=880000000001
	// 1900000001-20261204-000002 already_member run=nightly-2026-12-04 code=880000000002
	// 1900000001-20261204-000003 dead run=nightly-2026-12-04 wechat_code=INVALID_REQUEST message=用户近一年无微信支付交易，不满足导入条件
	// follow: <nil>
}

// A registration system hands members over in a run (here through the Go
// producer; `enqueue file --run` and the intake do the same) and reads the
// run's counts to learn when the night's import is done: a run is settled
// once its producer closed it and no member is left waiting.
func ExampleStore_Run() {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	client := asynq.NewClientFromRedisClient(rdb)
	const queue, run = "membercard", "nightly-2026-12-04"

	store, err := results.New(rdb, queue)
	if err != nil {
		panic(err)
	}
	producer, err := tasks.NewProducer(client, tasks.WithTaskOptions(tasks.WithQueue(queue)), tasks.WithRun(store, run))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	card := "pbLatjvWOibDc5-TBnbUk1pD12o0"
	members := []tasks.Payload{
		{CardID: card, OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6a", OutRequestNo: "1900000001-20261204-000001"},
		{CardID: card, OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6b", OutRequestNo: "1900000001-20261204-000002"},
		{CardID: card, OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6c", OutRequestNo: "1900000001-20261204-000003"},
		{CardID: card, OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6a", OutRequestNo: "1900000001-20261204-000001"},
		{CardID: card, OutRequestNo: "1900000001-20261204-000004"}, // no openid
	}
	if _, err := producer.EnqueueMany(ctx, members); err != nil {
		panic(err) // Redis could not be reached; sending the batch again is safe
	}
	if err := producer.CloseRun(ctx); err != nil {
		panic(err)
	}
	show := func() {
		r, err := store.Run(ctx, run)
		if err != nil {
			panic(err)
		}
		fmt.Printf("enqueued=%d duplicates=%d invalid=%d imported=%d already_member=%d dead=%d waiting=%d settled=%v\n",
			r.Enqueued, r.Duplicates, r.Invalid, r.Imported, r.AlreadyMember, r.Dead, r.Waiting, r.Settled())
	}
	show()

	// The workers import the members.
	settleLikeTheWorker(rdb, queue, run, []results.Event{
		{OutRequestNo: "1900000001-20261204-000001", Outcome: results.OutcomeImported, Code: "880000000001"},
		{OutRequestNo: "1900000001-20261204-000002", Outcome: results.OutcomeAlreadyMember, Code: "880000000002"},
		{OutRequestNo: "1900000001-20261204-000003", Outcome: results.OutcomeDead, Reason: tasks.ReasonPermanent,
			HTTPStatus: 400, WeChatCode: "INVALID_REQUEST", Message: "用户近一年无微信支付交易，不满足导入条件"},
	})
	show()
	// Output:
	// enqueued=3 duplicates=1 invalid=1 imported=0 already_member=0 dead=0 waiting=3 settled=false
	// enqueued=3 duplicates=1 invalid=1 imported=1 already_member=1 dead=1 waiting=0 settled=true
}

// settleLikeTheWorker records final outcomes of run's members as the
// worker's handler does (internal/deadletter's Store.Settle): the task's
// result, the outcome event and the run's counts, in one script.
func settleLikeTheWorker(rdb redis.UniversalClient, queue, run string, events []results.Event) {
	store, err := results.New(rdb, queue)
	if err != nil {
		panic(err)
	}
	for _, e := range events {
		e.CardID, e.Run = "pbLatjvWOibDc5-TBnbUk1pD12o0", run
		result, err := json.Marshal(tasks.Result{Outcome: tasks.Outcome(e.Outcome), Code: e.Code, Reason: e.Reason,
			HTTPStatus: e.HTTPStatus, WeChatCode: e.WeChatCode, Message: e.Message})
		if err != nil {
			panic(err)
		}
		k := results.SettleKeys{
			Task:       "asynq:{" + queue + "}:t:" + e.OutRequestNo,
			DeadRecord: "cardimport:{" + queue + "}:dead:" + e.OutRequestNo,
			DeadIndex:  "cardimport:{" + queue + "}:dead",
		}
		if _, err := store.Settle(context.Background(), k, results.Settlement{Result: result, Event: e}); err != nil {
			panic(err)
		}
	}
}

// waitAcknowledged returns once group has no event delivered and not yet
// acknowledged: the callback returning and the acknowledgement are two
// steps, and the example stops the follower only after both.
func waitAcknowledged(rdb redis.UniversalClient, queue, group string) {
	for {
		p, err := rdb.XPending(context.Background(), results.StreamKey(queue), group).Result()
		if err != nil {
			panic(err)
		}
		if p.Count == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

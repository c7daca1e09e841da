package guard

// keys are the Redis keys of one queue's shared state. The queue in braces
// is a cluster hash tag, as in asynq's own keys, so a script may touch them
// all.
type keys struct {
	// rate is the redis_rate key (redis_rate prefixes it with "rate:").
	rate string
	// slowdown holds the factor a 429 applied to the rate, and since when.
	slowdown string
	// circuit holds the breaker: state, cause, hint, since, next_probe,
	// failures.
	circuit string
}

func newKeys(queue string) keys {
	p := "cardimport:{" + queue + "}:"
	return keys{rate: p + "wechatpay", slowdown: p + "slowdown", circuit: p + "circuit"}
}

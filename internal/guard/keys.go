package guard

// keys are the Redis keys of one queue's shared state. The queue in braces
// is a cluster hash tag, as in asynq's own keys, so a script may touch them
// all.
type keys struct {
	// rate is the redis_rate key (redis_rate prefixes it with "rate:").
	rate string
	// slowdown holds the factor a 429 applied to the rate, and since when.
	slowdown string
	// circuit holds the breaker: state, cause, hint, since, failures.
	circuit string
	// probe exists while a probe is due later; whoever creates it probes.
	probe string
}

// KeyPrefix returns the prefix of every key the guard keeps for queue, for
// tests and tools that clean up after a queue.
func KeyPrefix(queue string) string { return "cardimport:{" + queue + "}:" }

func newKeys(queue string) keys {
	p := KeyPrefix(queue)
	return keys{rate: p + "wechatpay", slowdown: p + "slowdown", circuit: p + "circuit", probe: p + "circuit:probe"}
}

package deployment_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"testing"
	"time"

	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/tasks"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

const (
	// card is the card id of WeChat's own examples.
	card = "pbLatjvWOibDc5-TBnbUk1pD12o0"
	// rateLimit is WECHATPAY_RATE_LIMIT: far above what two cores carry,
	// so that the benchmarks measure capacity, not WeChat's limit.
	rateLimit = "100000"
	// waitFor bounds every wait.
	waitFor = 5 * time.Minute
)

// members returns n members no other run uses; openids starting with
// prefix (wechatpaytest.OpenIDPrefixNoTrade for members WeChat refuses).
func members(tag, prefix string, n int) []tasks.Payload {
	ms := make([]tasks.Payload, n)
	for i := range ms {
		ms[i] = tasks.Payload{
			CardID:       card,
			OpenID:       fmt.Sprintf("%s%s%07d", prefix, tag, i),
			OutRequestNo: fmt.Sprintf("1900000001-%s-%07d", tag, i),
		}
	}
	return ms
}

// startWorker runs a worker process on queue of the Redis at url against
// the sandbox, with extra environment, and waits until it works.
func startWorker(b *testing.B, url string, sb *testkit.Sandbox, queue string, extra map[string]string) *testkit.Process {
	b.Helper()
	vars := maps.Clone(sb.Env)
	vars["REDIS_URL"] = url
	vars["QUEUE"] = queue
	vars["WECHATPAY_RATE_LIMIT"] = rateLimit
	maps.Copy(vars, extra)
	p := testkit.Start(b, "worker", testkit.Environ(vars))
	p.WaitOutput(b, `"message":"worker started"`)
	return p
}

// cpuOf sums testkit.CPUTime over pids.
func cpuOf(b *testing.B, pids []int) time.Duration {
	var d time.Duration
	for _, pid := range pids {
		d += testkit.CPUTime(b, pid)
	}
	return d
}

// ctx is a context bounded by waitFor.
func ctx(b *testing.B) context.Context {
	c, cancel := context.WithTimeout(context.Background(), waitFor)
	b.Cleanup(cancel)
	return c
}

package worker_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/redistest"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

// workerEnv is the environment of a worker that imports from queue on r
// into srv: the variables of the env file the emulator writes with its
// keys, as an operator's would, plus REDIS_URL and QUEUE.
func workerEnv(tb testing.TB, srv *wechatpaytest.Server, r *redistest.Redis, queue string) map[string]string {
	tb.Helper()
	env, err := srv.Keys.WriteDir(tb.TempDir(), srv.URL)
	require.NoError(tb, err)
	env["REDIS_URL"] = r.URL
	env["QUEUE"] = queue
	return env
}

// environ turns vars into the NAME=value list of a process's environment.
func environ(vars map[string]string) []string {
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

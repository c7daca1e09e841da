package faultsuite_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/redisconn/redisconntest"
	"github.com/cardimport/cardimport/internal/testkit"
)

// TestClusterTLS: a three-master cluster that speaks TLS only (no plain
// port; the cluster bus and replication on TLS too), reached through
// rediss-cluster:// by a worker, `enqueue file --wait` and `enqueue dead
// list`, which trust the test's CA through SSL_CERT_FILE as any Go
// program does.
func TestClusterTLS(t *testing.T) {
	needFaults(t)
	certs := redisconntest.NewTLS(t)
	c := redisconntest.StartClusterTLS(t, 3, 0, certs)
	require.True(t, strings.HasPrefix(c.URL, "rediss-cluster://"))
	r := &testkit.Redis{Opt: c.Opt, URL: c.URL}
	q := newFailoverQueue(t, r, "tls", c.SpreadQueues(t, "tls")[0], keysMembers, keysRefused)
	q.vars["SSL_CERT_FILE"] = certs.CA
	q.startWorkers(1)
	out, code := q.enqueue("file", "--run", q.run, "--wait", q.file)
	require.Equal(t, 3, code, "--wait exits 3 with dead members:\n%s", out)
	require.True(t, strings.HasSuffix(strings.TrimSpace(out), fmt.Sprintf("imported=%d already_member=0 dead=%d", keysMembers, keysRefused)), out)
	out, _ = q.enqueue("dead", "list")
	require.Equal(t, keysRefused, strings.Count(out, "INVALID_REQUEST"), "enqueue dead list:\n%s", out)
	require.Equal(t, keysMembers, q.srv.Members())
	t.Logf("faults: tls: %d members imported and %d dead through %s…, a cluster on TLS only", keysMembers, keysRefused, c.URL[:len("rediss-cluster://")])
}

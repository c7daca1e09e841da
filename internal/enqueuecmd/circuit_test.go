package enqueuecmd

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/guard"
	"github.com/cardimport/cardimport/internal/wechatpay"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

// TestCircuit: the command shows the circuit closed, then, after a worker
// met SIGN_ERROR, open with the cause and the hint.
func TestCircuit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rdb := b.redis.Opt.MakeRedisClient().(redis.UniversalClient)
	t.Cleanup(func() { _ = rdb.Close() })

	got := b.run(t, nil, "circuit")
	require.Equal(t, result{code: 0, stdout: "circuit=closed failures=0 rate_factor=1.00\n"}, got)

	srv := wechatpaytest.NewServer(wechatpaytest.TestKeys(t))
	t.Cleanup(srv.Close)
	wrong, err := wechatpaytest.GenerateKeys()
	require.NoError(t, err)
	cfg := srv.ClientConfig(wechatpay.ModePublicKey)
	cfg.MchPrivateKey = wrong.MchPrivateKey
	wc, err := wechatpay.NewClient(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(wc.Close)
	g, err := guard.New(wc, guard.Config{Redis: rdb, Queue: b.queue, Rate: 10})
	require.NoError(t, err)
	_, err = g.Import(context.Background(), wechatpay.ImportRequest{CardID: "pLcard0001", OpenID: "oUser0000000001", OutRequestNo: "order-1"})
	require.Error(t, err)

	got = b.run(t, nil, "circuit")
	require.Equal(t, 0, got.code, got.stderr)
	require.Regexp(t, `^circuit=open since=\S+Z next_probe=\S+ failures=1 rate_factor=1.00 cause="wechat pay rejects our signature \(401 SIGN_ERROR\)" hint="check WECHATPAY_MCH_PRIVATE_KEY_FILE [^"]+"\n$`, got.stdout)

	// `enqueue status` of an import still waiting says why it waits.
	got = b.run(t, nil, "one", "--card-id", "pLcard0001", "--openid", "oUser0000000002", "--out-request-no", "order-2")
	require.Equal(t, 0, got.code, got.stderr)
	got = b.run(t, nil, "status", "order-2")
	require.Equal(t, 0, got.code, got.stderr)
	require.Regexp(t, `(?m)^circuit +open since \S+Z: wechat pay rejects our signature \(401 SIGN_ERROR\); imports wait without spending retries \(check WECHATPAY_MCH_PRIVATE_KEY_FILE`, got.stdout)
	got = b.run(t, nil, "status", "--json", "order-2")
	require.Equal(t, 0, got.code, got.stderr)
	require.Contains(t, got.stdout, `"circuit":{"open":true,"cause":"wechat pay rejects our signature (401 SIGN_ERROR)"`)
}

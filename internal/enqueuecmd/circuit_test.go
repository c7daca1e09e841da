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
	t.Cleanup(func() { _ = guard.DeleteState(context.Background(), rdb, b.queue); _ = rdb.Close() })

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
}

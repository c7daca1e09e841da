package demo

import (
	"net"
	"net/http"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/testkit"
)

func TestDashboardPortTaken(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { taken.Close() })
	redis := testkit.NewRedis(t)
	noenv := func(string) string { return "" }

	t.Run("the default moves to a free port", func(t *testing.T) {
		srv, stop, err := startDashboard(demoConfig{dashboard: taken.Addr().String()}, redis.Opt, noenv, zerolog.Nop())
		require.NoError(t, err)
		defer stop()
		require.NotEqual(t, taken.Addr().String(), srv.Addr())
		res, err := http.Get("http://" + srv.Addr() + "/api/queues")
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
	})
	t.Run("an address asked for is that address or an error", func(t *testing.T) {
		_, _, err := startDashboard(demoConfig{dashboard: taken.Addr().String(), dashboardSet: true}, redis.Opt, noenv, zerolog.Nop())
		require.ErrorContains(t, err, "--dashboard")
	})
	t.Run("beyond loopback it needs a login", func(t *testing.T) {
		_, _, err := startDashboard(demoConfig{dashboard: "0.0.0.0:0", dashboardSet: true}, asynq.RedisClientOpt{Addr: "127.0.0.1:1"}, noenv, zerolog.Nop())
		require.ErrorContains(t, err, "DASHBOARD_USER")
	})
}

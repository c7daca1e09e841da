package testkit

import (
	"context"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestClaim: NewPrivateRedis's claim on one database, in each state a
// database can be found in. A server of the test's own, so that no other
// test can claim the database between two steps.
func TestClaim(t *testing.T) {
	ctx := context.Background()
	m := miniredis.RunT(t)
	rc := redis.NewClient(&redis.Options{Addr: m.Addr(), Protocol: 2})
	defer rc.Close()
	keys := func() []string {
		t.Helper()
		k, err := rc.Keys(ctx, "*").Result()
		require.NoError(t, err)
		return k
	}

	require.True(t, claim(ctx, rc, "t1"), "an empty database")
	require.ElementsMatch(t, []string{claimKey, usedKey}, keys())
	require.False(t, claim(ctx, rc, "t2"), "claimed by another test")

	// The test ends: its keys go, the claim is given back.
	require.NoError(t, rc.Set(ctx, "asynq:{q}:pending", "x", 0).Err())
	require.NoError(t, rc.Set(ctx, "rate:cardimport:{q}:rate", "x", 0).Err())
	deleteTestKeys(ctx, rc)
	require.ElementsMatch(t, []string{claimKey, usedKey}, keys())
	require.NoError(t, releaseScript.Run(ctx, rc, []string{claimKey}, "t2").Err())
	require.ElementsMatch(t, []string{claimKey, usedKey}, keys(), "not t2's claim to give back")
	require.NoError(t, releaseScript.Run(ctx, rc, []string{claimKey}, "t1").Err())
	require.NoError(t, rc.Del(ctx, usedKey).Err())
	require.Empty(t, keys())

	// A run killed before its cleanup: its mark and its keys, the claim
	// expired. Cleaned and claimed.
	require.NoError(t, rc.Set(ctx, usedKey, "1", 0).Err())
	require.NoError(t, rc.Set(ctx, "asynq:{killed}:pending", "x", 0).Err())
	require.NoError(t, rc.Set(ctx, "cardimport:{killed}:dead", "x", 0).Err())
	require.True(t, claim(ctx, rc, "t3"))
	require.ElementsMatch(t, []string{claimKey, usedKey}, keys())
	deleteTestKeys(ctx, rc)
	require.NoError(t, releaseScript.Run(ctx, rc, []string{claimKey}, "t3").Err())
	require.NoError(t, rc.Del(ctx, usedKey).Err())

	// Someone's data, not marked: never claimed, never touched.
	require.NoError(t, rc.Set(ctx, "asynq:{theirs}:pending", "x", 0).Err())
	require.False(t, claim(ctx, rc, "t4"))
	require.ElementsMatch(t, []string{"asynq:{theirs}:pending"}, keys())

	// A killed run's mark beside someone's data: the test keys go, the
	// rest stays, and the database is not claimed.
	require.NoError(t, rc.Set(ctx, usedKey, "1", 0).Err())
	require.NoError(t, rc.Set(ctx, "session:42", "theirs", 0).Err())
	require.False(t, claim(ctx, rc, "t5"))
	require.ElementsMatch(t, []string{usedKey, "session:42"}, keys())
}

package httpserve_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/httpserve"
)

func TestSecretMatchesOnlyItself(t *testing.T) {
	t.Parallel()
	s := httpserve.NewSecret("0123456789abcdef")
	require.True(t, s.Matches("0123456789abcdef"))
	for _, guess := range []string{"", "0123456789abcde", "0123456789abcdef ", "0123456789ABCDEF"} {
		require.False(t, s.Matches(guess), guess)
	}
	require.True(t, httpserve.NewSecret("").Matches(""))
}

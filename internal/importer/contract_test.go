package importer_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/importer"
	"github.com/cardimport/cardimport/tasks"
)

// TestMinTimeoutFitsTheCall: the shortest attempt a producer may ask for
// (tasks.MinTimeout) is what the handler needs around one call to WeChat.
func TestMinTimeoutFitsTheCall(t *testing.T) {
	t.Parallel()
	require.Equal(t, importer.MinTimeout, tasks.MinTimeout)
}

// TestTasksIsTheContractOnly: a registration system importing tasks pulls
// in neither wechatpay-go, zerolog, asynqmon nor miniredis.
func TestTasksIsTheContractOnly(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "github.com/cardimport/cardimport/tasks").CombinedOutput()
	require.NoError(t, err, string(out))
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"wechatpay-go", "rs/zerolog", "asynqmon", "miniredis"} {
			require.NotContains(t, dep, banned, "tasks depends on %s", dep)
		}
	}
}

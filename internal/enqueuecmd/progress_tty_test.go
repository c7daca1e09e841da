//go:build linux

package enqueuecmd

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/cardimport/cardimport/internal/testkit"
)

// openPTY returns both ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	require.NoError(t, unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0))
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	require.NoError(t, err)
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return m, s
}

func TestFileProgressOnTerminal(t *testing.T) {
	// stderr a terminal: a bar is drawn, the report is still there line
	// by line, and standard output is untouched.
	t.Parallel()
	b := setup(t)
	master, slave := openPTY(t)
	require.True(t, isTerminal(slave))
	var screen bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		_, _ = io.Copy(&screen, master) // ends with EIO once the slave is closed
	}()
	var rows strings.Builder
	rows.WriteString(header)
	for i := range 3000 {
		fmt.Fprintf(&rows, "pLcard0001,oUser%010d,,order-%d\n", i, i)
	}
	rows.WriteString("pLcard0001,,,order-x\n")
	path := filepath.Join(t.TempDir(), "members.csv")
	require.NoError(t, os.WriteFile(path, []byte(rows.String()), 0o600))

	var stdout bytes.Buffer
	code := Run(testkit.Context(t), []string{"file", "--queue", b.queue, path}, func(k string) string { return b.env[k] }, nil, &stdout, slave)
	require.NoError(t, slave.Close())
	<-read
	require.Equal(t, 2, code)
	require.Equal(t, "enqueued=3000 duplicates=0 invalid=1\n", b.takeRunLine(stdout.String()))
	out := screen.String()
	require.Contains(t, out, "line 3002: openid: is required")
	require.Contains(t, out, "rows", "the bar counts rows")
	require.Contains(t, out, "%", "a file's size is known: the bar shows how far it is")
}

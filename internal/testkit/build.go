package testkit

// The project's commands built for tests that run them as real processes
// (SIGKILL, SIGTERM, several workers, the sandbox as users start it): each
// command is built once per test binary, into a directory that Main removes
// when the tests end.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// module is the import path the commands live under, as cmd/NAME.
const module = "github.com/cardimport/cardimport"

var (
	binDir   string
	buildsMu sync.Mutex
	builds   = map[string]func() (string, error){}
)

// Main runs m with a directory for the binaries and removes it afterwards.
// A package's TestMain calls it: os.Exit(testkit.Main(m)).
func Main(m *testing.M) int {
	d, err := os.MkdirTemp("", "cardimport-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binDir = d
	defer os.RemoveAll(d)
	return m.Run()
}

// Command returns the path of cmd/NAME built for this test binary; the
// first call builds it, later ones wait for and share that build.
func Command(name string) (string, error) {
	buildsMu.Lock()
	build, ok := builds[name]
	if !ok {
		build = sync.OnceValues(func() (string, error) {
			if binDir == "" {
				return "", fmt.Errorf("testkit: %s: the package's TestMain must call testkit.Main", name)
			}
			bin := filepath.Join(binDir, name)
			out, err := exec.Command("go", "build", "-o", bin, module+"/cmd/"+name).CombinedOutput()
			if err != nil {
				return "", fmt.Errorf("go build %s: %v\n%s", name, err, out)
			}
			return bin, nil
		})
		builds[name] = build
	}
	buildsMu.Unlock()
	return build()
}

package httpserve_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/httpserve"
)

// TestShutdownLetsRequestsFinish: a request in flight when the server
// stops gets its answer; the server then refuses new connections.
func TestShutdownLetsRequestsFinish(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = io.WriteString(w, "done")
	})
	s, err := httpserve.Start("test", "--test", "127.0.0.1:0", h, zerolog.Nop())
	require.NoError(t, err)

	answer := make(chan string, 1)
	go func() {
		res, err := http.Get("http://" + s.Addr() + "/")
		if err != nil {
			answer <- err.Error()
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		answer <- string(b)
	}()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("request did not arrive")
	}
	stopped := make(chan struct{})
	go func() { s.Shutdown(); close(stopped) }()
	time.AfterFunc(100*time.Millisecond, func() { close(release) })
	select {
	case got := <-answer:
		require.Equal(t, "done", got)
	case <-time.After(30 * time.Second):
		t.Fatal("no answer")
	}
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop")
	}
	_, err = http.Get("http://" + s.Addr() + "/")
	require.Error(t, err, "stopped server refuses connections")
}

// TestAddressInUse names the flag.
func TestAddressInUse(t *testing.T) {
	t.Parallel()
	s, err := httpserve.Start("a", "--a", "127.0.0.1:0", http.NotFoundHandler(), zerolog.Nop())
	require.NoError(t, err)
	defer s.Shutdown()
	_, err = httpserve.Start("b", "--metrics", s.Addr(), http.NotFoundHandler(), zerolog.Nop())
	require.ErrorContains(t, err, "--metrics: listen tcp "+s.Addr())
}

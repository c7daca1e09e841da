package sandbox_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/sandbox"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

// BenchmarkSandboxImport measures how many verified imports a second the
// sandbox answers to the official client, both ends signing and verifying
// RSA-2048: the ceiling of a load test before the sandbox, not the worker,
// is what is measured.
func BenchmarkSandboxImport(b *testing.B) {
	dir := b.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- sandbox.Serve(ctx, sandbox.Config{Addr: "127.0.0.1:0", Dir: dir}, pw)
		pw.Close()
	}()
	defer func() {
		cancel()
		require.NoError(b, <-done)
	}()
	ready := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		var out strings.Builder
		signalled := false
		for {
			n, err := pr.Read(buf)
			out.Write(buf[:n])
			if !signalled && strings.Contains(out.String(), "listening on ") {
				signalled = true
				close(ready)
			}
			if err != nil {
				return
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		b.Fatal("sandbox did not listen")
	}
	env, err := wechatpaytest.ReadEnvFile(filepath.Join(dir, wechatpaytest.FileEnv))
	require.NoError(b, err)
	c := officialClient(b, env)
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			body := importBody{OpenID: fmt.Sprintf("oBench%022d", i), OutRequestNo: fmt.Sprintf("bench-%d", i)}
			res, err := c.Post(ctx, env["WECHATPAY_BASE_URL"]+importPath(testCard), body)
			if err != nil {
				b.Error(err)
				return
			}
			res.Response.Body.Close()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "imports/s")
}

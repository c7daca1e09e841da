package httpserve_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/httpserve"
)

func TestIsLoopback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host string
		want bool
	}{
		{host: "127.0.0.1", want: true},
		{host: "127.8.9.10", want: true},
		{host: "::1", want: true},
		{host: "[::1]", want: true},
		{host: "localhost", want: true},
		{host: "LOCALHOST.", want: true},
		{host: "", want: false},
		{host: "0.0.0.0", want: false},
		{host: "::", want: false},
		{host: "192.168.1.10", want: false},
		{host: "no-such-host.invalid", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			require.Equal(t, tt.want, httpserve.IsLoopback(tt.host))
		})
	}
}

package redisconn

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAtLeast(t *testing.T) {
	t.Parallel()
	tests := []struct {
		version string
		want    bool
	}{
		{version: "7.0.15", want: true},
		{version: "6.2.0", want: true},
		{version: "6.2", want: true},
		{version: "6.0.20", want: false},
		{version: "5.0.14", want: false},
		{version: "10.0.0", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			require.Equal(t, tt.want, atLeast(tt.version, MinVersion))
		})
	}
}

func TestInfoField(t *testing.T) {
	t.Parallel()
	info := "# Server\r\nredis_version:6.0.9\r\nredis_mode:standalone\r\n"
	require.Equal(t, "6.0.9", infoField(info, "redis_version"))
	require.Equal(t, "", infoField(info, "missing"))
}

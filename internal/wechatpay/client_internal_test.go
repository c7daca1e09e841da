package wechatpay

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBackupURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		base   string
		backup string
		want   string
	}{
		{name: "production gets WeChat's backup host", base: DefaultBaseURL, want: DefaultBackupBaseURL},
		{name: "a sandbox gets none", base: "http://127.0.0.1:8080", want: ""},
		{name: "an explicit backup wins", base: DefaultBaseURL, backup: "https://proxy.example.com/", want: "https://proxy.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, err := url.Parse(tt.base)
			require.NoError(t, err)
			require.Equal(t, tt.want, backupURL(Config{BackupBaseURL: tt.backup}, base))
		})
	}
}

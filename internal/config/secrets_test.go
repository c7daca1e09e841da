package config_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/config"
)

// TestNoSecretInHelpOrErrors: `worker -h`, a bad flag's usage and every
// configuration error show no value taken from a secret-bearing variable:
// not REDIS_URL's password, not the dashboard's password, not a key put
// in a *_FILE variable instead of its path.
func TestNoSecretInHelpOrErrors(t *testing.T) {
	t.Parallel()
	env := keyDir(t)
	pemKey, err := os.ReadFile(env["WECHATPAY_MCH_PRIVATE_KEY_FILE"])
	require.NoError(t, err)
	const apiV3Key = "0123456789abcdefS3CRETapiv3key99"
	secrets := []string{"s3cretRedisPassw0rd", "s3cretDashboardPassw0rd", "MII", apiV3Key}
	env["REDIS_URL"] = "redis://default:s3cretRedisPassw0rd@redis.internal:6379/0"
	env["DASHBOARD_USER"] = "ops"
	env["DASHBOARD_PASSWORD"] = "s3cretDashboardPassw0rd"
	tests := []struct {
		name    string
		args    []string
		change  map[string]string
		wantErr string
	}{
		{name: "help", args: []string{"-h"}},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: "flag provided but not defined: -nope"},
		{name: "bad flag value", args: []string{"--concurrency", "many"}, wantErr: `invalid value "many" for flag -concurrency`},
		{name: "bad REDIS_URL", change: map[string]string{"REDIS_URL": "redis://default:s3cretRedisPassw0rd@redis.internal:port/0"}, wantErr: "REDIS_URL: "},
		{
			name:    "private key where its path belongs",
			change:  map[string]string{"WECHATPAY_MCH_PRIVATE_KEY_FILE": string(pemKey)},
			wantErr: "WECHATPAY_MCH_PRIVATE_KEY_FILE: names no file it can read (the value is not shown: it may be the key itself); set it to the path of the file holding the key",
		},
		{
			name:    "APIv3 key where its path belongs",
			change:  map[string]string{"WECHATPAY_APIV3_KEY_FILE": apiV3Key},
			wantErr: "WECHATPAY_APIV3_KEY_FILE: names no file it can read (the value is not shown: it may be the key itself); set it to the path of the file holding the key",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := maps.Clone(env)
			maps.Copy(e, tt.change)
			var out bytes.Buffer
			_, err := config.LoadWorker(append(tt.args, "--dashboard", "127.0.0.1:0"), lookup(e), &out)
			switch {
			case tt.wantErr != "":
				require.ErrorContains(t, err, tt.wantErr)
			default:
				require.True(t, errors.Is(err, flag.ErrHelp))
				require.Contains(t, out.String(), "Redis URL (default $REDIS_URL)")
			}
			shown := out.String()
			if err != nil {
				shown += err.Error()
			}
			for _, s := range secrets {
				require.NotContains(t, shown, s)
			}
		})
	}
}

// TestLooseKeyFileWarned: a merchant private key or APIv3 key file that
// group or others may read gets a warning naming the variable and the
// file, as ssh warns of a loose key; the worker still starts.
func TestLooseKeyFileWarned(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		keyMode    os.FileMode
		apiV3Mode  os.FileMode
		wantWarned []string // variables named by a warning
	}{
		{name: "owner only", keyMode: 0o600, apiV3Mode: 0o400},
		{name: "group may read the key", keyMode: 0o640, apiV3Mode: 0o600, wantWarned: []string{"WECHATPAY_MCH_PRIVATE_KEY_FILE"}},
		{name: "everyone may read both", keyMode: 0o644, apiV3Mode: 0o666, wantWarned: []string{"WECHATPAY_MCH_PRIVATE_KEY_FILE", "WECHATPAY_APIV3_KEY_FILE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := keyDir(t)
			apiV3 := filepath.Join(env["dir"], "apiv3_key.txt")
			// Auto-download mode, which reads the APIv3 key.
			env["WECHATPAY_APIV3_KEY_FILE"] = apiV3
			env["WECHATPAY_PUBLIC_KEY_ID"], env["WECHATPAY_PUBLIC_KEY_FILE"] = "", ""
			require.NoError(t, os.Chmod(env["WECHATPAY_MCH_PRIVATE_KEY_FILE"], tt.keyMode))
			require.NoError(t, os.Chmod(apiV3, tt.apiV3Mode))
			w, err := config.LoadWorker(nil, lookup(env), &bytes.Buffer{})
			require.NoError(t, err)
			var warned []string
			for _, warning := range w.Warnings {
				name, _, _ := strings.Cut(warning, ":")
				warned = append(warned, name)
			}
			require.Equal(t, tt.wantWarned, warned, "%q", w.Warnings)
			if len(tt.wantWarned) > 0 {
				require.Equal(t, fmt.Sprintf("WECHATPAY_MCH_PRIVATE_KEY_FILE: %s is readable by group or others (permissions %04o); anyone who reads it can sign as the merchant: chmod 600 it",
					env["WECHATPAY_MCH_PRIVATE_KEY_FILE"], tt.keyMode), w.Warnings[0])
			}
		})
	}
}

package sandbox

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

// TestKeyFilesIgnorePlantedFiles: what someone else put in the key
// directory first — a world-writable "….tmp" beside a key, a symbolic link
// there or at the key's own name — neither loosens the key's permissions
// nor makes the sandbox write a key through the link into another file.
func TestKeyFilesIgnorePlantedFiles(t *testing.T) {
	t.Parallel()
	keys := wechatpaytest.TestKeys(t)
	secret := []string{FileWeChatSide, wechatpaytest.FileMchPrivateKey, wechatpaytest.FileAPIv3Key}
	tests := []struct {
		name  string
		plant func(t *testing.T, dir, victim string)
	}{
		{name: "loose tmp files", plant: func(t *testing.T, dir, victim string) {
			for _, name := range secret {
				tmp := filepath.Join(dir, name+".tmp")
				require.NoError(t, os.WriteFile(tmp, nil, 0o666))
				require.NoError(t, os.Chmod(tmp, 0o666)) // past the umask
			}
		}},
		{name: "tmp files linking elsewhere", plant: func(t *testing.T, dir, victim string) {
			for _, name := range secret {
				require.NoError(t, os.Symlink(victim, filepath.Join(dir, name+".tmp")))
			}
		}},
		{name: "key names linking elsewhere", plant: func(t *testing.T, dir, victim string) {
			for _, name := range secret {
				require.NoError(t, os.Symlink(victim, filepath.Join(dir, name)))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			victim := filepath.Join(t.TempDir(), "victim")
			require.NoError(t, os.WriteFile(victim, []byte("someone else's file\n"), 0o644))
			tt.plant(t, dir, victim)

			_, err := keys.WriteDir(dir, "http://127.0.0.1:1")
			require.NoError(t, err)
			require.NoError(t, saveWeChatSide(dir, keys))

			for _, name := range secret {
				fi, err := os.Lstat(filepath.Join(dir, name))
				require.NoError(t, err)
				require.True(t, fi.Mode().IsRegular(), "%s is a file of its own, not a link", name)
				require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), name)
			}
			data, err := os.ReadFile(victim)
			require.NoError(t, err)
			require.Equal(t, "someone else's file\n", string(data), "nothing written through a link")
			fi, err := os.Stat(victim)
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
			loaded, err := loadKeys(dir)
			require.NoError(t, err)
			require.Equal(t, keys.PublicKeyID, loaded.PublicKeyID)
		})
	}
}

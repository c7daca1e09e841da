package wechatpaytest

import (
	"crypto/rand"
	"math/big"
)

const (
	digits        = "0123456789"
	upperHex      = "0123456789ABCDEF"
	alphanumerics = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// randomString returns n characters drawn uniformly from alphabet. Nonces,
// codes and request ids come from crypto/rand so that two emulators in one
// process never collide, as WeChat's never do.
func randomString(alphabet string, n int) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		// rand.Int only fails when the system's random source does, and
		// crypto/rand crashes the program rather than return such an error.
		v, _ := rand.Int(rand.Reader, max)
		b[i] = alphabet[v.Int64()]
	}
	return string(b)
}

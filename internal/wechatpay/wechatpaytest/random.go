package wechatpaytest

import (
	"crypto/rand"
)

const (
	digits        = "0123456789"
	upperHex      = "0123456789ABCDEF"
	alphanumerics = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// randomString returns n characters drawn uniformly from alphabet (at most
// 256 characters). Nonces, codes and request ids come from crypto/rand so
// that two emulators in one process never collide, as WeChat's never do.
// One read serves the whole string: a byte at or above the largest
// multiple of the alphabet's size is skipped, so that every character is
// equally likely.
func randomString(alphabet string, n int) string {
	out := make([]byte, 0, n)
	limit := 256 - 256%len(alphabet)
	buf := make([]byte, n+n/2+8)
	for len(out) < n {
		// crypto/rand crashes the program rather than return an error.
		_, _ = rand.Read(buf)
		for _, c := range buf {
			if int(c) < limit {
				out = append(out, alphabet[int(c)%len(alphabet)])
				if len(out) == n {
					break
				}
			}
		}
	}
	return string(out)
}

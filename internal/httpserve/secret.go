package httpserve

import (
	"crypto/sha256"
	"crypto/subtle"
)

// Secret is a login or a token requests must present, kept as its SHA-256
// hash: the guess is hashed too, so comparing it takes the same time
// whatever its length or content.
type Secret [sha256.Size]byte

// NewSecret returns the Secret of s.
func NewSecret(s string) Secret { return sha256.Sum256([]byte(s)) }

// Matches reports, in constant time, whether guess is the secret.
func (s Secret) Matches(guess string) bool {
	got := sha256.Sum256([]byte(guess))
	return subtle.ConstantTimeCompare(got[:], s[:]) == 1
}

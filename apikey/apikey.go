// Package apikey makes and checks Signalbox API keys.
//
// A key reads "sbk_" + 8 identifying characters + "_" + 43 secret characters
// (32 random bytes) + a 6-character checksum, all in base62. The identifying
// part and the "sbk_" tag form the prefix, which is stored and shown so a key
// can be named and revoked; only a SHA-256 hash of the whole key is stored.
// The checksum lets a mistyped or truncated key be refused before any
// database lookup, and the tag lets secret scanners recognise a leaked key.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"hash/crc32"
	"math/big"
	"strings"
)

// Tag starts every key.
const Tag = "sbk_"

const (
	alphabet    = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	idLen       = 8
	secretBytes = 32
	secretLen   = 43 // ceil(256 / log2(62))
	checksumLen = 6  // ceil(32 / log2(62))
	prefixLen   = len(Tag) + idLen
	keyLen      = prefixLen + 1 + secretLen + checksumLen
)

// ErrMalformed is returned by Parse for anything that is not a well-formed key.
var ErrMalformed = errors.New("malformed API key")

// Key is a newly made API key. Secret is shown once and never stored.
type Key struct {
	// Secret is the whole key, as a client sends it.
	Secret string
	// Prefix identifies the key and is safe to store and display.
	Prefix string
	// Hash is the SHA-256 of Secret, the only form that is stored.
	Hash []byte
}

// New makes a key from the system's secure random source.
func New() (Key, error) {
	id := make([]byte, idLen)
	for i := range id {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			return Key{}, err
		}
		id[i] = alphabet[n.Int64()]
	}
	raw := make([]byte, secretBytes)
	if _, err := rand.Read(raw); err != nil {
		return Key{}, err
	}
	body := Tag + string(id) + "_" + encode(new(big.Int).SetBytes(raw), secretLen)
	secret := body + checksum(body)
	return Key{Secret: secret, Prefix: secret[:prefixLen], Hash: Hash(secret)}, nil
}

// Parse checks a key's shape and checksum and returns its prefix. It does not
// say whether the key exists.
func Parse(secret string) (prefix string, err error) {
	if len(secret) != keyLen || !strings.HasPrefix(secret, Tag) || secret[prefixLen] != '_' {
		return "", ErrMalformed
	}
	for i := len(Tag); i < keyLen; i++ {
		if i != prefixLen && strings.IndexByte(alphabet, secret[i]) < 0 {
			return "", ErrMalformed
		}
	}
	body := secret[:keyLen-checksumLen]
	if subtle.ConstantTimeCompare([]byte(checksum(body)), []byte(secret[keyLen-checksumLen:])) != 1 {
		return "", ErrMalformed
	}
	return secret[:prefixLen], nil
}

// Hash is the stored form of a key.
func Hash(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// Equal compares a presented key with a stored hash in constant time.
func Equal(secret string, hash []byte) bool {
	return subtle.ConstantTimeCompare(Hash(secret), hash) == 1
}

// ValidPrefix reports whether s has the shape of a key prefix.
func ValidPrefix(s string) bool {
	if len(s) != prefixLen || !strings.HasPrefix(s, Tag) {
		return false
	}
	for i := len(Tag); i < prefixLen; i++ {
		if strings.IndexByte(alphabet, s[i]) < 0 {
			return false
		}
	}
	return true
}

func checksum(body string) string {
	return encode(big.NewInt(int64(crc32.ChecksumIEEE([]byte(body)))), checksumLen)
}

// encode writes n in base62, left-padded with zeros to width characters.
func encode(n *big.Int, width int) string {
	out := make([]byte, width)
	base := big.NewInt(int64(len(alphabet)))
	mod := new(big.Int)
	for i := width - 1; i >= 0; i-- {
		n.DivMod(n, base, mod)
		out[i] = alphabet[mod.Int64()]
	}
	return string(out)
}

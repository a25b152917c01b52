package apikey

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNewKeyParsesToItsPrefix(t *testing.T) {
	t.Parallel()
	k, err := New()
	require.NoError(t, err)
	require.Len(t, k.Secret, keyLen)
	require.True(t, ValidPrefix(k.Prefix))
	prefix, err := Parse(k.Secret)
	require.NoError(t, err)
	require.Equal(t, k.Prefix, prefix)
	require.True(t, Equal(k.Secret, k.Hash))
}

func TestKeysAreDistinct(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		k, err := New()
		require.NoError(t, err)
		require.False(t, seen[k.Secret])
		seen[k.Secret] = true
	}
}

func TestParseRefusesDamagedKeys(t *testing.T) {
	t.Parallel()
	k, err := New()
	require.NoError(t, err)
	flip := func(i int) string {
		b := []byte(k.Secret)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	for name, s := range map[string]string{
		"empty":           "",
		"truncated":       k.Secret[:len(k.Secret)-1],
		"extended":        k.Secret + "x",
		"typo in secret":  flip(20),
		"typo in id":      flip(5),
		"typo in sum":     flip(len(k.Secret) - 1),
		"wrong tag":       "sbx_" + k.Secret[4:],
		"bad character":   k.Secret[:20] + "-" + k.Secret[21:],
		"missing divider": k.Secret[:prefixLen] + "x" + k.Secret[prefixLen+1:],
	} {
		_, err := Parse(s)
		require.ErrorIs(t, err, ErrMalformed, name)
	}
}

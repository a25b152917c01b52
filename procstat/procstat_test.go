package procstat

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseStat(t *testing.T) {
	t.Parallel()
	// A command with a space and a ')' in it, as the kernel writes it.
	raw := []byte("4242 (post gres) x) S 17 4242 4242 0 -1 4194560 500 0 0 0 123 45 0 0 20 0 1 0 100 1000 10 18446744073709551615\n")
	p, err := parseStat(raw)
	require.NoError(t, err)
	require.Equal(t, Process{Comm: "post gres) x", PPID: 17, Ticks: 168}, p)

	for _, bad := range []string{"", "4242 post", "4242 (x) S 1 2", "4242 (x) S one 2 3 4 5 6 7 8 9 10 11 12"} {
		_, err := parseStat([]byte(bad))
		require.Error(t, err, bad)
	}
}

func TestParseBusy(t *testing.T) {
	t.Parallel()
	// user nice system idle iowait irq softirq steal guest guest_nice
	busy, err := parseBusy("cpu  100 2 30 5000 40 5 6 7 50 0")
	require.NoError(t, err)
	require.EqualValues(t, 100+2+30+5+6+7, busy)

	for _, bad := range []string{"", "cpu 1 2 3", "intr 1 2 3 4 5 6 7 8", "cpu 1 2 x 4 5 6 7 8"} {
		_, err := parseBusy(bad)
		require.Error(t, err, bad)
	}
}

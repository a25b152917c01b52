//go:build linux

package procstat

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReadsThisMachine(t *testing.T) {
	t.Parallel()
	busy, err := MachineBusy()
	require.NoError(t, err)
	require.Positive(t, busy)

	p, err := Read("self")
	require.NoError(t, err)
	require.Equal(t, os.Getppid(), p.PPID)
	// CPU time only grows.
	require.GreaterOrEqual(t, Ticks(os.Getpid()), p.Ticks)
	require.GreaterOrEqual(t, SelfTicks(), p.Ticks)
	require.Zero(t, Ticks(-1))
	require.Zero(t, ChildPID("no-such-command"))
}

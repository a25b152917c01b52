package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHealthAndBacklogSettings(t *testing.T) {
	t.Parallel()
	c, err := FromEnv(env(map[string]string{"DATABASE_URL": "postgres://x"}))
	require.NoError(t, err)
	require.Empty(t, c.HealthAddr, "a worker serves no HTTP unless asked")
	require.Equal(t, 10*time.Second, c.BacklogEvery)

	c, err = FromEnv(env(map[string]string{"DATABASE_URL": "postgres://x", "HEALTH_ADDR": ":8081", "OUTBOX_BACKLOG_EVERY": "2s"}))
	require.NoError(t, err)
	require.Equal(t, ":8081", c.HealthAddr)
	require.Equal(t, 2*time.Second, c.BacklogEvery)

	for key, value := range map[string]string{"HEALTH_ADDR": "8081", "OUTBOX_BACKLOG_EVERY": "0s"} {
		_, err := FromEnv(env(map[string]string{"DATABASE_URL": "postgres://x", key: value}))
		require.ErrorContains(t, err, key, "%s=%s", key, value)
	}
}

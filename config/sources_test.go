package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSourceSettings(t *testing.T) {
	t.Parallel()
	c, err := FromEnv(env(map[string]string{"DATABASE_URL": "postgres://x"}))
	require.NoError(t, err)
	require.Empty(t, c.PublicURL)
	require.Equal(t, 5*time.Second, c.SourceCacheTTL)
	require.Equal(t, 30*24*time.Hour, c.DeliveryRetention)
	require.Equal(t, 10_000, c.DeliveryMaxPerSource)

	c, err = FromEnv(env(map[string]string{"DATABASE_URL": "postgres://x", "PUBLIC_URL": "https://sb.example.com/",
		"SOURCE_CACHE_TTL": "1s", "DELIVERY_RETENTION": "7d", "DELIVERY_MAX_PER_SOURCE": "500"}))
	require.NoError(t, err)
	require.Equal(t, "https://sb.example.com", c.PublicURL)
	require.Equal(t, time.Second, c.SourceCacheTTL)
	require.Equal(t, 7*24*time.Hour, c.DeliveryRetention)
	require.Equal(t, 500, c.DeliveryMaxPerSource)

	for k, v := range map[string]string{"PUBLIC_URL": "sb.example.com", "SOURCE_CACHE_TTL": "soon",
		"DELIVERY_RETENTION": "-1h", "DELIVERY_MAX_PER_SOURCE": "0"} {
		_, err := FromEnv(env(map[string]string{"DATABASE_URL": "postgres://x", k: v}))
		require.ErrorContains(t, err, k, "%s=%s", k, v)
	}
}

package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store"
)

// TestKeyUseIsRecorded authenticates a request and finds the key's last
// use recorded, for `signalbox apikey list`.
func TestKeyUseIsRecorded(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.workspace(store.PlanStarter)
	keys, err := h.store.ListAPIKeys(context.Background(), c.ws.ID)
	require.NoError(t, err)
	require.Len(t, keys, 1)
	require.Nil(t, keys[0].LastUsedAt)

	c.expect(http.StatusOK, "GET", "/v1/usage", nil)
	require.Eventually(t, func() bool {
		keys, err := h.store.ListAPIKeys(context.Background(), c.ws.ID)
		require.NoError(t, err)
		return keys[0].LastUsedAt != nil
	}, 5*time.Second, 20*time.Millisecond)
}

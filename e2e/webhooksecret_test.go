package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"
)

// delivery is a webhook as a receiver got it.
type delivery struct {
	body   []byte
	header http.Header
}

// TestWebhookSecretVerifiesAndRotates checks deliveries with the Standard
// Webhooks reference library: with the secret GET /v1/workspace shows, and
// after a rotation with either secret for the overlap.
func TestWebhookSecretVerifiesAndRotates(t *testing.T) {
	t.Parallel()
	var (
		mu  sync.Mutex
		got []delivery
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, delivery{body: body, header: r.Header.Clone()})
		mu.Unlock()
	}))
	t.Cleanup(recv.Close)
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	tn.automation(`{"name":"notify","trigger":{"event":"signed.up"},
		"steps":[{"id":"hook","type":"webhook","url":"` + recv.URL + `","body":{"email":"contact.email"}}]}`)
	nth := func(n int) delivery {
		require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= n }, 30*time.Second, 50*time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		return got[n-1]
	}
	verify := func(secret string, d delivery) error {
		wh, err := standardwebhooks.NewWebhook(secret)
		require.NoError(t, err)
		return wh.Verify(d.body, d.header)
	}

	ws := tn.call(http.StatusOK, "GET", "/v1/workspace", nil)
	require.Equal(t, tn.ws.ID.String(), ws["id"])
	old := ws["webhook_secret"].(string)
	require.True(t, strings.HasPrefix(old, "whsec_"), old)
	require.Nil(t, ws["previous_webhook_secret_until"])

	tn.event(map[string]any{"name": "signed.up", "email": "a@example.com", "create_if_missing": true})
	first := nth(1)
	require.NoError(t, verify(old, first))
	require.Error(t, verify("whsec_"+strings.Repeat("A", 43)+"=", first), "another secret does not verify")

	rotated := tn.call(http.StatusOK, "POST", "/v1/workspace/webhook-secret/rotate", nil)
	fresh := rotated["webhook_secret"].(string)
	require.NotEqual(t, old, fresh)
	until, err := time.Parse(time.RFC3339Nano, rotated["previous_webhook_secret_until"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(24*time.Hour), until, time.Minute)
	require.Equal(t, fresh, tn.call(http.StatusOK, "GET", "/v1/workspace", nil)["webhook_secret"])

	tn.event(map[string]any{"name": "signed.up", "email": "b@example.com", "create_if_missing": true})
	second := nth(2)
	require.Len(t, strings.Fields(second.header.Get("webhook-signature")), 2, "one signature per secret")
	require.NoError(t, verify(fresh, second), "receivers on the new secret verify")
	require.NoError(t, verify(old, second), "receivers still on the old one verify for 24 h")
}

package api_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
)

// requireUnavailable checks a 503 problem that says when to retry and
// gives away nothing of the cause.
func requireUnavailable(t *testing.T, r response) {
	t.Helper()
	require.Equal(t, http.StatusServiceUnavailable, r.Status, "%s", r.Body)
	require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
	require.Equal(t, "1", r.Header.Get("Retry-After"))
	p := r.JSON(t)
	require.Equal(t, "unavailable", p["code"])
	require.Equal(t, "urn:signalbox:problem:unavailable", p["type"])
	require.EqualValues(t, http.StatusServiceUnavailable, p["status"])
	body := strings.ToLower(string(r.Body))
	for _, leak := range []string{"sqlstate", "lock", "timeout", "connect", "postgres", "eof", "closed", "127.0.0.1"} {
		require.NotContains(t, body, leak, "internal error text reached the client")
	}
}

// TestIngestLockTimeoutIs503 records events for a contact whose row another
// transaction holds FOR UPDATE: the record transaction gives up after its
// lock timeout, the request is answered 503 with Retry-After, nothing is
// stored, and the same request succeeds once the lock is gone.
func TestIngestLockTimeoutIs503(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t, store.Config{LockTimeout: 200 * time.Millisecond})
	h := newHarnessOn(t, st)
	c := h.workspace(store.PlanStarter)
	contact := c.event(map[string]any{"name": "created", "email": "a@example.com", "create_if_missing": true})["contact_id"]

	hold, err := st.Pool().Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = hold.Rollback(ctx) }()
	_, err = hold.Exec(ctx, `SELECT 1 FROM contacts WHERE id = $1 FOR UPDATE`, contact)
	require.NoError(t, err)

	single := map[string]any{"name": "blocked", "contact_id": contact}
	batch := map[string]any{"events": []any{single, map[string]any{"name": "blocked", "email": "a@example.com"}}}
	requireUnavailable(t, c.do("POST", "/v1/events", single))
	requireUnavailable(t, c.do("POST", "/v1/events/batch", batch))
	require.NoError(t, hold.Rollback(ctx))

	require.Empty(t, c.list("/v1/events?name=blocked", 10), "nothing of a 503 is stored")
	require.EqualValues(t, 1, c.expect(http.StatusOK, "GET", "/v1/usage", nil)["tracked"])
	c.event(single)
	require.EqualValues(t, 2, c.expect(http.StatusOK, "POST", "/v1/events/batch", batch)["processed"])
}

// tcpProxy forwards connections to a PostgreSQL server until it is cut,
// which makes the server unreachable for a store that connects through it.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &tcpProxy{ln: ln, target: target}
	t.Cleanup(p.cut)
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	return p
}

// cut stops accepting and drops every connection.
func (p *tcpProxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestIngestDatabaseUnreachableIs503 cuts the API off from PostgreSQL:
// connections in the pool are lost and new ones cannot be made. Recording
// (and reading) is answered 503 with Retry-After, not 500.
func TestIngestDatabaseUnreachableIs503(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u, err := url.Parse(storetest.URL(t))
	require.NoError(t, err)
	proxy := startProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	st, err := store.Open(ctx, u.String(), store.Config{})
	require.NoError(t, err)
	t.Cleanup(st.Close)
	h := newHarnessOn(t, st)
	c := h.workspace(store.PlanStarter)
	// The key is checked now and cached, so what follows reaches the record path.
	c.event(map[string]any{"name": "created", "email": "a@example.com", "create_if_missing": true})

	proxy.cut()
	requireUnavailable(t, c.do("POST", "/v1/events", map[string]any{"name": "lost", "email": "a@example.com"}))
	requireUnavailable(t, c.do("POST", "/v1/events/batch", map[string]any{"events": []any{
		map[string]any{"name": "lost", "email": "a@example.com"}}}))
	requireUnavailable(t, c.do("GET", "/v1/events", nil))
	r := (&client{h: h}).do("GET", "/readyz", nil)
	require.Equal(t, http.StatusServiceUnavailable, r.Status)
}

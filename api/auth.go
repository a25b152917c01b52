package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/signalbox/signalbox/apikey"
	"github.com/signalbox/signalbox/store"
)

// principal is the workspace a request acts for.
type principal struct {
	WorkspaceID uuid.UUID
	Plan        store.Plan
	KeyPrefix   string
}

const principalKey = "signalbox.principal"

// authenticator checks bearer keys. Live keys are remembered for a short
// TTL so the hot path does not query PostgreSQL on every request; the TTL is
// also how long a revoked key can keep working on any replica.
type authenticator struct {
	store *store.Store
	ttl   time.Duration
	now   func() time.Time

	mu    sync.Mutex
	cache map[string]cachedCredential
}

type cachedCredential struct {
	cred    store.Credential
	expires time.Time
	// touched is when this replica last recorded the key's use.
	touched time.Time
}

func newAuthenticator(s *store.Store, ttl time.Duration) *authenticator {
	return &authenticator{store: s, ttl: ttl, now: time.Now, cache: map[string]cachedCredential{}}
}

var errUnauthorized = errors.New("unauthorized")

// lookup returns the credential of the key with this prefix, from the cache
// while it is fresh.
func (a *authenticator) lookup(ctx context.Context, prefix string) (store.Credential, error) {
	now := a.now()
	a.mu.Lock()
	cc, ok := a.cache[prefix]
	a.mu.Unlock()
	if ok && now.Before(cc.expires) {
		return cc.cred, nil
	}
	cred, err := a.store.CredentialByPrefix(ctx, prefix)
	if errors.Is(err, store.ErrNotFound) {
		a.mu.Lock()
		delete(a.cache, prefix)
		a.mu.Unlock()
		return store.Credential{}, errUnauthorized
	}
	if err != nil {
		return store.Credential{}, err
	}
	a.mu.Lock()
	if len(a.cache) > 100_000 { // a crude bound; live keys are few
		clear(a.cache)
	}
	a.cache[prefix] = cachedCredential{cred: cred, expires: now.Add(a.ttl), touched: cc.touched}
	a.mu.Unlock()
	return cred, nil
}

// middleware requires "Authorization: Bearer KEY" and puts the principal in
// the context.
func (a *authenticator) middleware(c *gin.Context) {
	// The scheme name is case-insensitive (RFC 9110 §11.1).
	scheme, secret, ok := strings.Cut(c.GetHeader("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		a.refuse(c, "missing bearer API key: send Authorization: Bearer KEY")
		return
	}
	prefix, err := apikey.Parse(strings.TrimSpace(secret))
	if err != nil {
		a.refuse(c, "malformed API key")
		return
	}
	cred, err := a.lookup(c.Request.Context(), prefix)
	if errors.Is(err, errUnauthorized) || err == nil && !apikey.Equal(strings.TrimSpace(secret), cred.Hash) {
		a.refuse(c, "unknown or revoked API key")
		return
	}
	if err != nil {
		_ = c.Error(err)
		c.Abort()
		return
	}
	a.touch(prefix)
	c.Set(principalKey, principal{WorkspaceID: cred.WorkspaceID, Plan: cred.Plan, KeyPrefix: prefix})
	c.Next()
}

// touch records, at most once a minute per key on this replica and off the
// request's path, that the key was used.
func (a *authenticator) touch(prefix string) {
	now := a.now()
	a.mu.Lock()
	cc, ok := a.cache[prefix]
	due := ok && now.Sub(cc.touched) >= time.Minute
	if due {
		cc.touched = now
		a.cache[prefix] = cc
	}
	a.mu.Unlock()
	if !due {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.store.TouchAPIKey(ctx, prefix)
	}()
}

func (a *authenticator) refuse(c *gin.Context, detail string) {
	c.Header("WWW-Authenticate", `Bearer realm="signalbox"`)
	_ = c.Error(errorf(http.StatusUnauthorized, "unauthorized", "%s", detail))
	c.Abort()
}

func who(c *gin.Context) principal {
	return c.MustGet(principalKey).(principal)
}

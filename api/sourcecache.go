package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/signalbox/signalbox/source"
	"github.com/signalbox/signalbox/store"
)

// liveSource is what /in/{token} needs of a source, decoded once per
// cache fill.
type liveSource struct {
	id, workspaceID uuid.UUID
	plan            store.Plan
	enabled         bool
	def             source.Definition
}

// sourceCache resolves tokens to sources without a query per delivery:
// an entry (also "no such token") is trusted for SOURCE_CACHE_TTL, and this
// process's own writes (patch, rotate, delete) drop it at once. So a
// rotated or disabled URL answers 404 at once here and within the TTL on
// other API replicas.
type sourceCache struct {
	store *store.Store
	ttl   time.Duration
	now   func() time.Time

	mu      sync.RWMutex
	byToken map[string]cachedSource
	// gen counts invalidations: a lookup that read the database before one
	// does not cache what it read, which may be the state before the write.
	gen uint64
}

type cachedSource struct {
	src     *liveSource // nil: no live source has this token
	expires time.Time
}

// maxCachedSources bounds the cache; a flood of made-up tokens clears it
// rather than growing it.
const maxCachedSources = 100_000

func newSourceCache(s *store.Store, ttl time.Duration) *sourceCache {
	return &sourceCache{store: s, ttl: ttl, now: time.Now, byToken: map[string]cachedSource{}}
}

// lookup returns the source of token, nil when there is none.
func (sc *sourceCache) lookup(ctx context.Context, token string) (*liveSource, error) {
	now := sc.now()
	sc.mu.RLock()
	e, ok := sc.byToken[token]
	gen := sc.gen
	sc.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.src, nil
	}
	src, plan, err := sc.store.SourceByToken(ctx, token)
	var live *liveSource
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		live = &liveSource{id: src.ID, workspaceID: src.WorkspaceID, plan: plan, enabled: src.Enabled}
		if err := json.Unmarshal(src.Definition, &live.def); err != nil {
			return nil, fmt.Errorf("decode source %s: %w", src.ID, err)
		}
	}
	sc.mu.Lock()
	if len(sc.byToken) >= maxCachedSources {
		clear(sc.byToken)
	}
	if sc.gen == gen {
		sc.byToken[token] = cachedSource{src: live, expires: now.Add(sc.ttl)}
	}
	sc.mu.Unlock()
	return live, nil
}

// invalidate forgets token after this process changed its source.
func (sc *sourceCache) invalidate(token string) {
	sc.mu.Lock()
	delete(sc.byToken, token)
	sc.gen++
	sc.mu.Unlock()
}

// Package catalog applies a workspace's event catalog on the record path:
// which names are declared, whether undeclared ones are refused, and the
// JSON Schema contract of each declared type. It keeps, per workspace, the
// declared types with their schemas compiled (each schema version once),
// refreshed after a TTL and at once after this process's own changes.
package catalog

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/signalbox/signalbox/store"
)

// DefaultTTL is how long a workspace's catalog is trusted before it is read
// again: how long another replica's change takes to apply here.
const DefaultTTL = 5 * time.Second

// Loader reads a workspace's catalog; *store.Store is one.
type Loader interface {
	LoadCatalogRules(ctx context.Context, ws uuid.UUID) (store.CatalogRules, error)
}

// Catalog is the record path's view of every workspace's catalog. It is
// safe for concurrent use.
type Catalog struct {
	load Loader
	ttl  time.Duration
	log  *slog.Logger
	now  func() time.Time

	// entries maps a workspace to its *entry; read on every request, so
	// lock-free once the workspace is known.
	entries sync.Map
}

// entry is one workspace's catalog; loading serialises its reloads so a
// burst of requests after the TTL costs one query.
type entry struct {
	loading sync.Mutex
	mu      sync.RWMutex
	rules   *rules
	expires time.Time
	// gen counts invalidations, so a load that began before one is not
	// trusted after it.
	gen uint64
}

// rules is a loaded catalog.
type rules struct {
	reject bool
	types  map[string]*declared
}

type declared struct {
	mode    string
	version int
	// schema is nil when the type has none (or it no longer compiles,
	// which saving prevents).
	schema *Schema
}

// New makes a Catalog reading from load; ttl 0 means DefaultTTL.
func New(load Loader, ttl time.Duration, log *slog.Logger) *Catalog {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Catalog{load: load, ttl: ttl, log: log, now: time.Now}
}

// Invalidate makes the next request of the workspace read its catalog
// again; the API calls it after each change it makes.
func (c *Catalog) Invalidate(ws uuid.UUID) {
	e := c.entry(ws)
	e.mu.Lock()
	e.expires = time.Time{}
	e.gen++
	e.mu.Unlock()
}

func (c *Catalog) entry(ws uuid.UUID) *entry {
	if e, ok := c.entries.Load(ws); ok {
		return e.(*entry)
	}
	e, _ := c.entries.LoadOrStore(ws, &entry{})
	return e.(*entry)
}

// rules returns the workspace's catalog, reading it when it is stale.
func (c *Catalog) rules(ctx context.Context, ws uuid.UUID) (*rules, error) {
	e := c.entry(ws)
	e.mu.RLock()
	r, fresh := e.rules, c.now().Before(e.expires)
	e.mu.RUnlock()
	if fresh {
		return r, nil
	}
	e.loading.Lock()
	defer e.loading.Unlock()
	e.mu.RLock()
	r, fresh, gen := e.rules, c.now().Before(e.expires), e.gen
	e.mu.RUnlock()
	if fresh {
		return r, nil
	}
	loaded, err := c.load.LoadCatalogRules(ctx, ws)
	if err != nil {
		return nil, err
	}
	next := &rules{reject: loaded.Undeclared == store.UndeclaredReject, types: make(map[string]*declared, len(loaded.Types))}
	for _, t := range loaded.Types {
		d := &declared{mode: t.Mode, version: t.Version}
		if r != nil {
			// A schema version never changes: keep what is compiled.
			if old := r.types[t.Name]; old != nil && old.version == t.Version {
				d.schema = old.schema
			}
		}
		if d.schema == nil && t.Schema != nil {
			s, problems := CompileSchema(t.Schema)
			if len(problems) > 0 {
				c.log.ErrorContext(ctx, "stored event schema does not compile", "workspace_id", ws, "event_name", t.Name,
					"schema_version", t.Version, "detail", problems[0].Detail)
			}
			d.schema = s
		}
		next.types[t.Name] = d
	}
	e.mu.Lock()
	e.rules = next
	if e.gen == gen {
		e.expires = c.now().Add(c.ttl)
	}
	e.mu.Unlock()
	return next, nil
}

// Check applies the catalog to a request's events in place: each gets the
// schema version it was checked against and its violations, or, when the
// workspace refuses it (an undeclared name under "reject", a violation of
// an "enforce" schema), its Refused error. It fails only when the catalog
// cannot be read.
func (c *Catalog) Check(ctx context.Context, req *store.RecordRequest) error {
	r, err := c.rules(ctx, req.WorkspaceID)
	if err != nil {
		return err
	}
	if !r.reject && len(r.types) == 0 {
		return nil
	}
	for i := range req.Events {
		e := &req.Events[i]
		d := r.types[e.Name]
		if d == nil {
			if r.reject {
				e.Refused = store.ErrUndeclaredEvent
			}
			continue
		}
		if d.schema == nil {
			continue
		}
		e.SchemaVersion = d.version
		violations := d.schema.Validate(e.Properties)
		if len(violations) == 0 {
			continue
		}
		if d.mode == store.SchemaEnforce {
			e.Refused = &store.SchemaError{Name: e.Name, Version: d.version, Violations: violations}
			continue
		}
		e.SchemaErrors = violations
	}
	return nil
}

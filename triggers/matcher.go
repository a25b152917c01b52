// Package triggers keeps, per workspace, the automations grouped by the
// event name their trigger names, with their conditions compiled: the
// record path's cache, so deciding what an event does costs a map lookup
// plus the conditions of the automations that name it, however many
// automations the workspace has.
package triggers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/decision"
	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/store"
)

// Matcher implements store.Automator.
type Matcher struct {
	store *store.Store
	env   *conditions.Env
	ttl   time.Duration
	log   *slog.Logger
	now   func() time.Time

	mu    sync.Mutex
	cache map[uuid.UUID]*entry
}

// entry is one workspace's compiled triggers.
type entry struct {
	loaded  time.Time
	any     bool // the workspace has automations, enabled or not
	byEvent map[string][]decision.Trigger
	ready   chan struct{} // closed once loaded; concurrent lookups wait on it
	err     error
}

// New makes a Matcher. ttl bounds how long another replica's change to an
// automation takes to be seen here; changes made through this process call
// Invalidate and apply at once.
func New(s *store.Store, env *conditions.Env, ttl time.Duration, log *slog.Logger) *Matcher {
	return &Matcher{store: s, env: env, ttl: ttl, log: log, now: time.Now, cache: map[uuid.UUID]*entry{}}
}

// Invalidate drops a workspace's cached triggers.
func (m *Matcher) Invalidate(workspaceID uuid.UUID) {
	m.mu.Lock()
	delete(m.cache, workspaceID)
	m.mu.Unlock()
}

// Load returns the workspaces' compiled triggers, loading those not cached
// or older than the TTL. The record path calls it before its transaction.
func (m *Matcher) Load(ctx context.Context, workspaceIDs []uuid.UUID) (decision.Automations, error) {
	set := automationSet{m: m, entries: make(map[uuid.UUID]*entry, len(workspaceIDs))}
	for _, ws := range workspaceIDs {
		e, err := m.entry(ctx, ws)
		if err != nil {
			return nil, err
		}
		set.entries[ws] = e
	}
	return set, nil
}

// automationSet is what one record transaction sees; it never does I/O.
type automationSet struct {
	m       *Matcher
	entries map[uuid.UUID]*entry
}

// Automates reports whether the workspace has any automation.
func (s automationSet) Automates(ws uuid.UUID) bool {
	e := s.entries[ws]
	return e != nil && e.any
}

// Triggers returns the automations, enabled or not, whose trigger names
// the event name.
func (s automationSet) Triggers(ws uuid.UUID, name string) []decision.Trigger {
	if e := s.entries[ws]; e != nil {
		return e.byEvent[name]
	}
	return nil
}

// Conditions is the CEL environment the triggers were compiled in.
func (s automationSet) Conditions() *conditions.Env { return s.m.env }

func (m *Matcher) entry(ctx context.Context, ws uuid.UUID) (*entry, error) {
	m.mu.Lock()
	e, ok := m.cache[ws]
	// Closing ready publishes loaded, so read it only after that.
	if ok && isReady(e) && m.now().Sub(e.loaded) > m.ttl {
		ok = false
	}
	if !ok {
		e = &entry{ready: make(chan struct{})}
		m.cache[ws] = e
		m.mu.Unlock()
		// Others may wait on this load: no one caller's cancellation may
		// fail it for them.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		e.any, e.byEvent, e.err = m.load(lctx, ws)
		cancel()
		e.loaded = m.now()
		close(e.ready)
		if e.err != nil {
			m.Invalidate(ws)
		}
		return e, e.err
	}
	m.mu.Unlock()
	select {
	case <-e.ready:
		return e, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func isReady(e *entry) bool {
	select {
	case <-e.ready:
		return true
	default:
		return false
	}
}

func (m *Matcher) load(ctx context.Context, ws uuid.UUID) (bool, map[string][]decision.Trigger, error) {
	versions, err := m.store.CurrentAutomations(ctx, ws)
	if err != nil {
		return false, nil, err
	}
	byEvent := map[string][]decision.Trigger{}
	for _, v := range versions {
		t, err := Compile(m.env, v)
		if err != nil {
			m.log.ErrorContext(ctx, "stored automation does not compile", "automation_id", v.AutomationID.String(), "error", err.Error())
			continue
		}
		byEvent[t.Definition.Trigger.Event] = append(byEvent[t.Definition.Trigger.Event], t)
	}
	return len(versions) > 0, byEvent, nil
}

// Compile turns a stored version of an automation into a trigger, its
// condition compiled.
func Compile(env *conditions.Env, v store.AutomationVersion) (decision.Trigger, error) {
	var def definition.Automation
	if err := json.Unmarshal(v.Definition, &def); err != nil {
		return decision.Trigger{}, fmt.Errorf("definition does not parse: %w", err)
	}
	t := decision.Trigger{AutomationID: v.AutomationID, Version: v.Version, Enabled: v.Enabled, Definition: def}
	if def.Trigger.Condition != "" {
		var err error
		if t.Condition, err = env.Compile(def.Trigger.Condition, conditions.KindCondition); err != nil {
			return decision.Trigger{}, fmt.Errorf("trigger condition does not compile: %w", err)
		}
		t.ReadsContact = mentionsContact(def.Trigger.Condition)
	}
	return t, nil
}

// One is a set of a single automation of a workspace, for a backfill: it
// answers as the cache would if the workspace had only that automation.
func One(env *conditions.Env, workspaceID uuid.UUID, t decision.Trigger) decision.Automations {
	return one{env: env, ws: workspaceID, t: t}
}

type one struct {
	env *conditions.Env
	ws  uuid.UUID
	t   decision.Trigger
}

func (o one) Automates(ws uuid.UUID) bool { return ws == o.ws }

func (o one) Triggers(ws uuid.UUID, name string) []decision.Trigger {
	if ws != o.ws || name != o.t.Definition.Trigger.Event {
		return nil
	}
	return []decision.Trigger{o.t}
}

func (o one) Conditions() *conditions.Env { return o.env }

// mentionsContact is a cheap test for whether a condition can read the
// contact; loading it costs a query, so skip it when the text never says so.
func mentionsContact(expr string) bool { return strings.Contains(expr, "contact") }

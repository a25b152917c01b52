// Package triggers decides which enabled automations an event starts. It
// keeps, per workspace, the enabled automations grouped by trigger event
// name with their conditions compiled, so matching an event costs a map
// lookup plus the conditions of the automations that name it, however many
// automations the workspace has.
package triggers

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/signalbox/signalbox/activities"
	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/workflows"
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
	byEvent map[string][]compiled
	ready   chan struct{} // closed once loaded; concurrent lookups wait on it
	err     error
}

type compiled struct {
	match store.TriggerMatch
	cond  *conditions.Program // nil: no condition
	uses  bool                // the condition reads contact
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
func (m *Matcher) Load(ctx context.Context, workspaceIDs []uuid.UUID) (store.AutomationSet, error) {
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

// Triggers returns the enabled automations whose trigger the event meets.
// A condition that fails to evaluate does not match.
func (s automationSet) Triggers(ctx context.Context, ws uuid.UUID, ev *store.TriggerEvent, contact func() *store.Contact) []store.TriggerMatch {
	e := s.entries[ws]
	if e == nil {
		return nil
	}
	candidates := e.byEvent[ev.Name]
	if len(candidates) == 0 {
		return nil
	}
	var out []store.TriggerMatch
	evMap := activities.EventFrom(*ev).CELMap()
	for _, c := range candidates {
		if c.cond == nil {
			out = append(out, c.match)
			continue
		}
		vars := conditions.Vars{Event: evMap, Trigger: evMap, Now: s.m.now().UTC()}
		if c.uses {
			if ct := contact(); ct != nil {
				vars.Contact = activities.ContactMap(*ct)
			}
		}
		ok, err := c.cond.EvalBool(ctx, vars)
		if err != nil {
			s.m.log.DebugContext(ctx, "trigger condition did not hold", "automation_id", c.match.AutomationID.String(),
				"error", err.Error())
		}
		if ok {
			out = append(out, c.match)
		}
	}
	return out
}

// WaitMatches evaluates a waiting enrollment's condition for an event.
func (m *Matcher) WaitMatches(ctx context.Context, w *store.Wait, ev *store.TriggerEvent, contact *store.Contact) bool {
	return activities.WaitMatches(ctx, m.env, w, ev, contact, m.log)
}

// WorkflowID names an enrollment's workflow.
func (m *Matcher) WorkflowID(enrollmentID uuid.UUID) string {
	return workflows.WorkflowID(enrollmentID.String())
}

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

func (m *Matcher) load(ctx context.Context, ws uuid.UUID) (bool, map[string][]compiled, error) {
	anyAutomation, err := m.store.HasAutomations(ctx, ws)
	if err != nil {
		return false, nil, err
	}
	versions, err := m.store.EnabledAutomations(ctx, ws)
	if err != nil {
		return false, nil, err
	}
	byEvent := map[string][]compiled{}
	for _, v := range versions {
		var def definition.Automation
		if err := json.Unmarshal(v.Definition, &def); err != nil {
			m.log.ErrorContext(ctx, "stored automation does not parse", "automation_id", v.AutomationID.String(), "error", err.Error())
			continue
		}
		c := compiled{match: store.TriggerMatch{AutomationID: v.AutomationID, Version: v.Version, Once: def.Trigger.Once(),
			ExitOn: def.ExitOn, Definition: v.Definition}}
		if def.Trigger.Condition != "" {
			if c.cond, err = m.env.Compile(def.Trigger.Condition, conditions.KindCondition); err != nil {
				m.log.ErrorContext(ctx, "stored trigger condition does not compile", "automation_id", v.AutomationID.String(),
					"error", err.Error())
				continue
			}
			c.uses = mentionsContact(def.Trigger.Condition)
		}
		byEvent[def.Trigger.Event] = append(byEvent[def.Trigger.Event], c)
	}
	return anyAutomation, byEvent, nil
}

// mentionsContact is a cheap test for whether a condition can read the
// contact; loading it costs a query, so skip it when the text never says so.
func mentionsContact(expr string) bool { return strings.Contains(expr, "contact") }

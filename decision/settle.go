package decision

import (
	"encoding/json"

	"github.com/google/uuid"

	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/event"
	"github.com/signalbox/signalbox/intent"
)

func unmarshal(raw []byte, v any) error {
	if len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, v)
}

// WaitKey names a wait: its enrollment and step. A claim on a wait on
// several events also names the row it takes (Event, the awaited name).
type WaitKey struct {
	EnrollmentID uuid.UUID
	StepID       string
	Event        string
}

// Wait returns the key of the wait itself, without the row.
func (k WaitKey) Wait() WaitKey { return WaitKey{EnrollmentID: k.EnrollmentID, StepID: k.StepID} }

// MultiState is a wait on several events as the claims left it.
type MultiState struct {
	// Mode is "any" or "all".
	Mode string
	// Names are every awaited name, sorted.
	Names []string
	// Matched are the claimed events by name, the group's won claims
	// included.
	Matched map[string]event.Event
}

// Complete reports whether the wait is resumed: one of its events matched
// (any), or each of them (all).
func (m MultiState) Complete() bool {
	if m.Mode == string(definition.ModeAll) {
		return len(m.Matched) == len(m.Names)
	}
	return len(m.Matched) > 0
}

// Events lists the matched events in the order of Names.
func (m MultiState) Events() []event.Event {
	var out []event.Event
	for _, n := range m.Names {
		if e, ok := m.Matched[n]; ok {
			out = append(out, e)
		}
	}
	return out
}

// detail says which names matched (with their events) and which are still
// awaited.
func (m MultiState) detail(into map[string]any) {
	matched := map[string]any{}
	awaiting := []string{}
	for _, n := range m.Names {
		if e, ok := m.Matched[n]; ok {
			matched[n] = e.ID
		} else {
			awaiting = append(awaiting, n)
		}
	}
	into["matched"] = matched
	if !m.Complete() {
		into["awaiting"] = awaiting
	}
}

// OnceKey names a "once" reservation: an automation and a contact.
type OnceKey struct {
	AutomationID, ContactID uuid.UUID
}

// Claims are the rows a plan's decisions take if no concurrent transaction
// took them first.
type Claims struct {
	// Once are "once" reservations, with the enrollment that takes each.
	Once map[OnceKey]uuid.UUID
	// Waits are waits to resume, with the event that resumes each; for a
	// wait on several events, the rows of its names (WaitKey.Event) to
	// claim.
	Waits map[WaitKey]uuid.UUID
	// Exits are enrollments to end, with their exit event.
	Exits map[uuid.UUID]uuid.UUID
	// Limits are enrollments of automations with limits, in the order the
	// events came: each needs room under its automation's limits.
	Limits []LimitClaim
}

// LimitClaim is an enrollment that needs room under its automation's
// limits.
type LimitClaim struct {
	EnrollmentID, AutomationID, ContactID uuid.UUID
	Limits                                *definition.Limits
}

// Won is which claims the record path won, from its conditional writes.
type Won struct {
	Once map[OnceKey]bool
	// Earlier names, for a lost reservation, the enrollment that holds it,
	// when known.
	Earlier map[OnceKey]uuid.UUID
	Waits   map[WaitKey]bool
	// Multi are the waits on several events that the group claimed rows
	// of, by WaitKey.Wait(), as the claims left them.
	Multi map[WaitKey]MultiState
	Exits map[uuid.UUID]bool
	// Limited names the enrollments a limit refused, with the limit
	// ("max_enrollments" or "per_contact"); in queue mode they wait.
	Limited map[uuid.UUID]string
}

// Claims lists what the plan claims.
func (p *Plan) Claims() Claims {
	c := Claims{Once: map[OnceKey]uuid.UUID{}, Waits: map[WaitKey]uuid.UUID{}, Exits: map[uuid.UUID]uuid.UUID{}}
	for _, d := range p.decisions {
		if d.won {
			continue
		}
		switch d.Kind {
		case KindTrigger:
			if d.start.Definition.Trigger.Once() {
				c.Once[OnceKey{d.AutomationID, d.start.ContactID}] = d.EnrollmentID
			}
			if l := d.start.Definition.Limits; l != nil {
				c.Limits = append(c.Limits, LimitClaim{EnrollmentID: d.EnrollmentID, AutomationID: d.AutomationID,
					ContactID: d.start.ContactID, Limits: l})
			}
		case KindWait:
			c.Waits[d.wait.claimKey()] = d.EventID
		case KindExit:
			c.Exits[d.EnrollmentID] = d.EventID
		}
	}
	return c
}

// Settle takes the outcome of the claims: a lost reservation is
// once_already (and its enrollment, with what the group decided about it,
// never existed), a lost wait or exit was taken by another event. Only won
// claims take effect and count.
func (p *Plan) Settle(w Won) {
	void := map[uuid.UUID]bool{}
	// The group's last won claim on a wait on several events is the one
	// that resumes it, if the wait is complete.
	last := map[WaitKey]*Decision{}
	// progress is what such a wait had matched as of each decision: the
	// claims before the group's, then the group's won claims in order.
	progress := map[WaitKey]map[string]event.Event{}
	for _, d := range p.decisions {
		if !d.won && d.Kind == KindWait && d.wait.Mode != "" && w.Waits[d.wait.claimKey()] {
			last[d.wait.Key()] = d
		}
	}
	for k := range last {
		prior := map[string]event.Event{}
		for name, e := range w.Multi[k].Matched {
			prior[name] = e
		}
		for _, o := range p.decisions {
			if !o.won && o.Kind == KindWait && o.wait.Key() == k && w.Waits[o.wait.claimKey()] {
				delete(prior, o.wait.EventName)
			}
		}
		progress[k] = prior
	}
	for _, d := range p.decisions {
		if d.won {
			continue
		}
		switch d.Kind {
		case KindTrigger:
			k := OnceKey{d.AutomationID, d.start.ContactID}
			limit, limited := w.Limited[d.EnrollmentID]
			queues := d.start.Definition.Limits.Queues()
			switch {
			case limited && !queues:
				void[d.EnrollmentID] = true
				l := d.start.Definition.Limits.Of(limit)
				d.Outcome, d.Detail = RateLimited, map[string]any{"limit": limit, "count": l.Count, "per": l.Per.String(),
					"on_limit": definition.OnLimitSkip}
				d.EnrollmentID, d.start, d.exitOn, d.exit = uuid.Nil, nil, nil, nil
			case d.start.Definition.Trigger.Once() && !w.Once[k]:
				void[d.EnrollmentID] = true
				d.Outcome, d.EnrollmentID, d.start, d.exitOn, d.exit = OnceAlready, w.Earlier[k], nil, nil, nil
			case limited:
				// Queued: the enrollment (its id reserved) starts when the
				// window allows; nothing of the group acts on it before.
				void[d.EnrollmentID] = true
				l := d.start.Definition.Limits.Of(limit)
				d.Outcome, d.Detail = RateLimited, map[string]any{"limit": limit, "count": l.Count, "per": l.Per.String(),
					"on_limit": definition.OnLimitQueue, "queued": true}
				d.queued = true
			default:
				d.won = true
			}
		case KindWait:
			if !w.Waits[d.wait.claimKey()] {
				d.Outcome, d.wait = TakenByOtherEvent, nil
				continue
			}
			d.won = true
			if d.wait.Mode == "" {
				continue
			}
			state := w.Multi[d.wait.Key()]
			sofar := progress[d.wait.Key()]
			if e, ok := state.Matched[d.wait.EventName]; ok {
				sofar[d.wait.EventName] = e
			}
			MultiState{Mode: state.Mode, Names: state.Names, Matched: sofar}.detail(d.Detail)
			if last[d.wait.Key()] == d && state.Complete() {
				d.events = state.Events()
				continue
			}
			d.Outcome = WaitMatched
		case KindExit:
			if w.Exits[d.EnrollmentID] {
				d.won = true
				continue
			}
			d.Outcome, d.exit = TakenByOtherEvent, nil
		}
	}
	// Decisions about an enrollment that never existed go with it.
	kept := p.decisions[:0]
	for _, d := range p.decisions {
		if d.Kind == KindExit && void[d.EnrollmentID] {
			continue
		}
		kept = append(kept, d)
	}
	p.decisions = kept
	p.settled = true
}

// Queued returns, once settled, the enrollments that wait for room under
// their automation's limits, in item order.
func (p *Plan) Queued() []Enrollment {
	var out []Enrollment
	for _, d := range p.decisions {
		if d.queued {
			out = append(out, Enrollment{Start: d.start, WorkflowID: intent.WorkflowID(d.EnrollmentID), ExitOn: d.exitOn,
				Once: d.start.Definition.Trigger.Once(), Trace: d.trace})
		}
	}
	return out
}

// Decisions are the group's decisions, in item order; after Settle, with
// their final outcomes.
func (p *Plan) Decisions() []*Decision { return p.decisions }

// Effect is an intent for Temporal that a decision writes to the outbox.
type Effect struct {
	Item        Item
	WorkspaceID uuid.UUID
	WorkflowID  string
	Kind        string
	Payload     any
	Trace       string
}

// Enrollment is an enrollment a decision starts.
type Enrollment struct {
	Start      *intent.Start
	WorkflowID string
	ExitOn     []string
	// ExitEventID is the event of the group that already ends it, if any.
	ExitEventID *uuid.UUID
	Once        bool
	// Trace is the W3C trace context of the request that made it.
	Trace string
}

// Effects returns, once settled, the enrollments the group starts and the
// intents its decisions write, in item order (a start before the cancel
// that follows it), and adds each decision that took effect to counts.
func (p *Plan) Effects(count func(it Item, kind string)) ([]Enrollment, []Effect) {
	if !p.settled {
		panic("decision: Effects before Settle")
	}
	var (
		enrollments []Enrollment
		effects     []Effect
	)
	for _, d := range p.decisions {
		switch {
		case d.Kind == KindTrigger && d.Outcome == Enrolled:
			e := Enrollment{Start: d.start, WorkflowID: intent.WorkflowID(d.EnrollmentID), ExitOn: d.exitOn,
				Once: d.start.Definition.Trigger.Once()}
			if ev := d.exit.exitEvent; ev != uuid.Nil {
				e.ExitEventID = &ev
			}
			enrollments = append(enrollments, e)
			effects = append(effects, Effect{Item: d.Item, WorkspaceID: d.WorkspaceID, WorkflowID: e.WorkflowID,
				Kind: intent.KindStart, Payload: d.start, Trace: d.trace})
			count(d.Item, KindTrigger)
		case d.Kind == KindWait && d.Outcome == Resumed:
			effects = append(effects, Effect{Item: d.Item, WorkspaceID: d.WorkspaceID, WorkflowID: d.wait.WorkflowID,
				Kind: intent.KindSignal, Payload: intent.Signal{EnrollmentID: d.wait.EnrollmentID, StepID: d.wait.StepID, Event: d.event,
					Events: d.events},
				Trace: d.trace})
			count(d.Item, KindWait)
		case d.Kind == KindExit && d.Outcome == Exited:
			ev := d.EventID
			effects = append(effects, Effect{Item: d.Item, WorkspaceID: d.WorkspaceID, WorkflowID: d.exit.WorkflowID,
				Kind: intent.KindCancel, Payload: intent.Cancel{EnrollmentID: d.EnrollmentID, EventID: &ev}, Trace: d.trace})
			count(d.Item, KindExit)
		}
	}
	return enrollments, effects
}

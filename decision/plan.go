package decision

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/event"
	"github.com/signalbox/signalbox/intent"
)

// Input is what the record path read for a group of new events.
type Input struct {
	// Events are the group's new events of workspaces with automations, in
	// item order.
	Events []Fresh
	// Exits lists, by contact and event name, the active enrollments whose
	// automation exits on that name.
	Exits map[ContactEvent][]*Candidate
	// Waits lists, by contact and event name, the unclaimed waits open at
	// the group's receipt time.
	Waits map[ContactEvent][]*Wait
	// Contacts are the CEL views of the contacts whose conditions may read
	// them.
	Contacts map[uuid.UUID]map[string]any
	// Segments lists, by contact, the segments it is in among those its
	// waits' conditions test with in_segment, read in the record
	// transaction.
	Segments map[uuid.UUID][]string
	// Automations are the workspaces' automations.
	Automations Automations
	// NewID makes enrollment and decision ids (time-ordered).
	NewID func() uuid.UUID
	// Now is the CEL "now" of the group's conditions.
	Now time.Time
}

// Plan is a group's decisions, in item order as if the events had come one
// after another, before the claims they make are settled.
type Plan struct {
	decisions []*Decision
	settled   bool
}

// Make decides, event by event in item order: first the exits (an event
// never exits the enrollment it starts, and an enrollment exits once,
// whichever of its exit events comes first), then the waits (an exiting
// enrollment is not resumed; a wait is resumed by the first event of the
// group inside its window that meets its condition), then the triggers.
// Each event's conditions share one CEL budget.
func Make(ctx context.Context, in Input) *Plan {
	p := &Plan{}
	exiting := map[uuid.UUID]uuid.UUID{} // enrollment → the exit event of the group
	onceInGroup := map[[2]uuid.UUID]uuid.UUID{}
	claimed := map[WaitKey]bool{} // waits (or names of all-waits) an event of the group takes
	env := in.Automations.Conditions()
	for _, f := range in.Events {
		ectx, cancel := env.EventBudget(ctx)
		p.exits(f, in, exiting)
		p.waits(ectx, env, f, in, exiting, claimed)
		p.triggers(ectx, f, in, onceInGroup)
		cancel()
	}
	return p
}

func (p *Plan) add(f Fresh, d *Decision, in Input) *Decision {
	d.ID, d.Item, d.WorkspaceID, d.EventID, d.At, d.trace = in.NewID(), f.Item, f.WorkspaceID, f.Event.ID, f.Event.ReceivedAt, f.Trace
	p.decisions = append(p.decisions, d)
	return d
}

func (p *Plan) exits(f Fresh, in Input, exiting map[uuid.UUID]uuid.UUID) {
	for _, c := range in.Exits[ContactEvent{f.ContactID, f.Event.Name}] {
		if c.TriggerEventID == f.Event.ID {
			continue
		}
		d := &Decision{Kind: KindExit, AutomationID: c.AutomationID, Version: c.Version, EnrollmentID: c.EnrollmentID}
		if by, ok := exiting[c.EnrollmentID]; ok {
			d.Outcome, d.Detail = TakenByOtherEvent, map[string]any{"exit_event_id": by}
			d.won = true
			p.add(f, d, in)
			continue
		}
		exiting[c.EnrollmentID] = f.Event.ID
		c.exitEvent = f.Event.ID
		d.Outcome, d.exit, d.won = Exited, c, c.fresh
		p.add(f, d, in)
	}
}

func (p *Plan) waits(ctx context.Context, env *conditions.Env, f Fresh, in Input, exiting map[uuid.UUID]uuid.UUID,
	claimed map[WaitKey]bool) {
	for _, w := range in.Waits[ContactEvent{f.ContactID, f.Event.Name}] {
		if !w.Covers(f.Event.ID, f.Event.ReceivedAt) {
			continue
		}
		d := &Decision{Kind: KindWait, AutomationID: w.AutomationID, Version: w.Version, EnrollmentID: w.EnrollmentID,
			won: true, Detail: map[string]any{"step_id": w.StepID}}
		if w.Mode != "" {
			d.Detail["mode"] = w.Mode
		}
		switch by, ok := exiting[w.EnrollmentID]; {
		case ok:
			d.Outcome = Exited
			d.Detail["exit_event_id"] = by
		case claimed[w.Key()] || claimed[w.claimKey()]:
			d.Outcome = TakenByOtherEvent
		default:
			var trigger event.Event
			_ = unmarshal(w.Trigger, &trigger)
			ok, err := env.WaitConditionIn(ctx, w.Condition, trigger, f.Event, in.Contacts[f.ContactID],
				in.Segments[f.ContactID], in.Now)
			switch {
			case err != nil:
				d.Outcome = WaitConditionFalse
				d.Detail["expression"], d.Detail["error"] = w.Condition, err.Error()
			case !ok:
				d.Outcome = WaitConditionFalse
				d.Detail["expression"] = w.Condition
			default:
				if w.exclusive() {
					claimed[w.Key()] = true
				} else {
					claimed[w.claimKey()] = true
				}
				d.Outcome, d.wait, d.event, d.won = Resumed, w, f.Event, false
			}
		}
		p.add(f, d, in)
	}
}

func (p *Plan) triggers(ctx context.Context, f Fresh, in Input, onceInGroup map[[2]uuid.UUID]uuid.UUID) {
	for _, t := range in.Automations.Triggers(f.WorkspaceID, f.Event.Name) {
		d := &Decision{Kind: KindTrigger, AutomationID: t.AutomationID, Version: t.Version, won: true}
		switch {
		case !t.Enabled:
			d.Outcome = AutomationDisabled
		case f.Event.Depth >= MaxDepth:
			d.Outcome, d.Detail = DepthLimit, map[string]any{"depth": f.Event.Depth, "max_depth": MaxDepth}
		default:
			p.trigger(ctx, f, in, t, d, onceInGroup)
		}
		p.add(f, d, in)
	}
}

// trigger decides one enabled automation whose trigger names the event.
func (p *Plan) trigger(ctx context.Context, f Fresh, in Input, t Trigger, d *Decision, onceInGroup map[[2]uuid.UUID]uuid.UUID) {
	if t.Condition != nil {
		evMap := conditions.EventMap(f.Event)
		vars := conditions.Vars{Event: evMap, Trigger: evMap, Now: in.Now}
		if t.ReadsContact {
			vars.Contact = in.Contacts[f.ContactID]
		}
		ok, err := t.Condition.EvalBool(ctx, vars)
		var ee *conditions.EvalError
		switch {
		case err != nil && !errors.Is(err, conditions.ErrNoSuchKey) && errors.As(err, &ee):
			d.Outcome = ConditionError
			d.Detail = map[string]any{"expression": t.Condition.Expr(), "error": err.Error()}
			return
		case !ok:
			d.Outcome = ConditionFalse
			d.Detail = map[string]any{"expression": t.Condition.Expr(), "values": t.Condition.Reads(vars)}
			return
		}
	}
	if t.Definition.Trigger.Once() {
		k := [2]uuid.UUID{t.AutomationID, f.ContactID}
		if earlier, ok := onceInGroup[k]; ok {
			d.Outcome, d.EnrollmentID = OnceAlready, earlier
			return
		}
		d.won = false // the reservation is a claim
	}
	if t.Definition.Limits != nil {
		d.won = false // room under the limits is a claim
	}
	enrollment := in.NewID()
	d.Outcome, d.EnrollmentID = Enrolled, enrollment
	if t.Definition.Trigger.Once() {
		onceInGroup[[2]uuid.UUID{t.AutomationID, f.ContactID}] = enrollment
	}
	d.start = &intent.Start{EnrollmentID: enrollment, WorkspaceID: f.WorkspaceID, AutomationID: t.AutomationID,
		Version: t.Version, ContactID: f.ContactID, Definition: t.Definition, Trigger: f.Event}
	d.exitOn = t.Definition.ExitOn
	// Later events of the group may exit it.
	d.exit = &Candidate{EnrollmentID: enrollment, WorkflowID: intent.WorkflowID(enrollment), WorkspaceID: f.WorkspaceID,
		AutomationID: t.AutomationID, Version: t.Version, TriggerEventID: f.Event.ID, fresh: true}
	for _, name := range d.exitOn {
		k := ContactEvent{f.ContactID, name}
		in.Exits[k] = append(in.Exits[k], d.exit)
	}
}

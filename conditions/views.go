package conditions

import (
	"context"
	"encoding/json"
	"time"

	"github.com/signalbox/signalbox/event"
)

// EventMap is the CEL view of an event: id, name, properties (an empty map
// when it has none) and occurred_at.
func EventMap(e event.Event) map[string]any {
	var props map[string]any
	_ = json.Unmarshal(e.Properties, &props)
	if props == nil {
		props = map[string]any{}
	}
	return map[string]any{"id": e.ID.String(), "name": e.Name, "properties": props, "occurred_at": e.OccurredAt}
}

// ContactMap is the CEL view of a contact: id, email, first_name and
// last_name ("" when unset) and properties.
func ContactMap(id, email string, firstName, lastName *string, properties json.RawMessage) map[string]any {
	var props map[string]any
	_ = json.Unmarshal(properties, &props)
	if props == nil {
		props = map[string]any{}
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	return map[string]any{"id": id, "email": email, "first_name": str(firstName), "last_name": str(lastName),
		"properties": props}
}

// WaitCondition evaluates a wait_for_event step's condition for a candidate
// event, with the enrollment's trigger and contact (nil when the condition
// does not read it) at now; an empty condition matches every event of the
// awaited name. An error means the condition did not compile or evaluate,
// and counts as not met.
func (e *Env) WaitCondition(ctx context.Context, expr string, trigger, ev event.Event, contact map[string]any,
	now time.Time) (bool, error) {
	return e.WaitConditionIn(ctx, expr, trigger, ev, contact, nil, now)
}

// WaitConditionIn is WaitCondition for a contact that is in segments (of
// those the expression tests with in_segment).
func (e *Env) WaitConditionIn(ctx context.Context, expr string, trigger, ev event.Event, contact map[string]any,
	segments []string, now time.Time) (bool, error) {
	if expr == "" {
		return true, nil
	}
	prog, err := e.Compile(expr, KindCondition)
	if err != nil {
		return false, err
	}
	return prog.EvalBool(ctx, Vars{Event: EventMap(ev), Trigger: EventMap(trigger), Contact: contact, Now: now,
		Segments: segments})
}

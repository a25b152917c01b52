package workflows

import (
	"bytes"
	"fmt"
	"maps"
	"strings"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/signalbox/signalbox/activities"
	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/event"
)

// MultiEventWaitsChange is the change that added waits on several events
// (wait_for_event with "events" and "mode"). Version 1 runs them on the
// logical clock, as WaitWindowsChange does for a wait on one event; the
// gate is taken only at such a step, so other enrollments pay nothing
// for it.
const MultiEventWaitsChange = "multi-event-waits"

// multiWait runs a wait_for_event step that lists several events. Its
// window opens on the logical clock, as for one event. Registering it
// looks back over the window so far for each name (the record path claims
// the rest, one row per name); the wait resumes once one of its events
// (any) or each of them (all) is claimed, which the record path signals
// once, with every matched event. The yes steps read them as CEL's
// events.
func (r *run) multiWait(ctx workflow.Context, s *definition.Step) error {
	w := s.WaitForEvent
	if !r.logical(ctx) || workflow.GetVersion(ctx, MultiEventWaitsChange, workflow.DefaultVersion, 1) < 1 {
		// Never the case: an enrollment reaches such a step only on code
		// that has both changes.
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("step %s: a wait on several events needs the %s change", s.ID, MultiEventWaitsChange),
			"InvalidDefinition", nil)
	}
	mode := w.Mode
	if mode == "" {
		mode = definition.ModeAny
	}
	r.state.Waiting = strings.Join(w.Events, ", ")
	in := activities.WaitInput{Scope: r.scope, StepID: s.ID, Events: w.Events, Mode: string(mode), Condition: w.Condition,
		BeganAt: r.opened, After: r.after, ExpiresAt: r.opened.Add(w.Timeout.Std()), Strict: true}
	var reg activities.WaitResult
	if err := r.book(ctx, a.RegisterWait, in, &reg); err != nil {
		return err
	}
	got, matched, reason := reg.Event, reg.Events, "window closed"
	if got == nil && !reg.Closed {
		reason = "timeout"
		r.log(ctx, s, "waiting", map[string]any{"events": w.Events, "mode": mode, "timeout": w.Timeout.String(),
			"from": in.BeganAt, "until": in.ExpiresAt, "matched": eventIDs(matched)})
		var err error
		if got, matched, err = r.await(ctx, s, in); err != nil {
			return err
		}
	}
	if got == nil {
		r.opened, r.after = in.ExpiresAt, uuid.Nil
		r.log(ctx, s, "no", map[string]any{"branch": "no", "reason": reason, "matched": eventIDs(matched)})
		return r.steps(ctx, w.No)
	}
	if len(matched) == 0 {
		matched = []event.Event{*got}
	}
	// The window after the wait opens at the last of its events, which
	// need not be the one whose claim completed it.
	last := *got
	for _, e := range matched {
		r.seen[e.ID] = true
		if e.ReceivedAt.After(last.ReceivedAt) || e.ReceivedAt.Equal(last.ReceivedAt) && bytes.Compare(e.ID[:], last.ID[:]) > 0 {
			last = e
		}
	}
	r.seen[got.ID] = true
	r.opened, r.after = last.ReceivedAt, last.ID
	if r.opened.IsZero() {
		r.opened, r.after = workflow.Now(ctx), uuid.Nil
	}
	r.log(ctx, s, "yes", map[string]any{"branch": "yes", "event_id": got.ID, "events": eventIDs(matched)})
	outer := r.scope.Events
	r.scope.Events = maps.Clone(outer)
	if r.scope.Events == nil {
		r.scope.Events = map[string]event.Event{}
	}
	for _, e := range matched {
		r.scope.Events[e.Name] = e
	}
	err := r.steps(ctx, w.Yes)
	r.scope.Events = outer
	return err
}

// eventIDs maps matched events' names to their ids, for the step log.
func eventIDs(events []event.Event) map[string]uuid.UUID {
	out := make(map[string]uuid.UUID, len(events))
	for _, e := range events {
		out[e.Name] = e.ID
	}
	return out
}

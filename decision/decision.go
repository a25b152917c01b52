// Package decision decides what a group of newly recorded events does to
// automations: which enrollments each event starts, which waits it resumes
// and which enrollments it ends, and why it does not where it does not. It
// computes those decisions as values from what the record path read (the
// indexes of waits and exits, the workspace's automations, the contacts)
// and hands them back to be written, with the claims that a concurrent
// transaction may win first; it does no I/O. The decisions are kept, so the
// API can answer "why did or didn't it fire".
package decision

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/event"
	"github.com/signalbox/signalbox/intent"
)

// Kinds of decision: what of an automation names the event.
const (
	KindTrigger = "trigger"
	KindWait    = "wait"
	KindExit    = "exit"
)

// Outcomes of a decision.
const (
	// Enrolled: the event started an enrollment.
	Enrolled = "enrolled"
	// ConditionFalse: the trigger's condition did not hold (Detail has the
	// expression and the values it read).
	ConditionFalse = "condition_false"
	// ConditionError: the trigger's condition failed to evaluate (Detail
	// has the error); it counts as not met.
	ConditionError = "condition_error"
	// OnceAlready: a "once" automation had enrolled the contact before
	// (Detail names the earlier enrollment when known).
	OnceAlready = "once_already"
	// AutomationDisabled: the automation's trigger names the event but the
	// automation is disabled.
	AutomationDisabled = "automation_disabled"
	// DepthLimit: the event was emitted too many emit_event steps away
	// from an application event to trigger anything (see MaxDepth).
	DepthLimit = "depth_limit"
	// RateLimited: the automation's flow control held the enrollment back.
	RateLimited = "rate_limited"
	// Resumed: the event resumed a waiting enrollment; for a wait on all of
	// several events, the event that completed it (Detail names every
	// matched event).
	Resumed = "resumed"
	// WaitMatched: the event was claimed by a wait on all of several events
	// that still needs others (Detail says which are matched and which
	// awaited); the event that completes the wait is Resumed.
	WaitMatched = "wait_matched"
	// WaitConditionFalse: a wait for the event's name did not accept it
	// (its condition did not hold or failed to evaluate; Detail says).
	WaitConditionFalse = "wait_condition_false"
	// TakenByOtherEvent: another event (earlier in the group, or committed
	// first by a concurrent request) resumed the wait or ended the
	// enrollment first.
	TakenByOtherEvent = "taken_by_other_event"
	// Exited: the event ended the enrollment (an exit event), or, for a
	// wait, the enrollment was ending on this or an earlier event and was
	// not resumed.
	Exited = "exited"
)

// MaxDepth stops loops of automations that emit events which trigger
// automations: an event this many emit_event steps away from an
// application event is recorded but triggers nothing.
const MaxDepth = 5

// Item addresses one event of one request of a group.
type Item struct{ Request, Index int }

// Decision is what one event did, or did not do, to one automation.
type Decision struct {
	ID           uuid.UUID
	Item         Item
	WorkspaceID  uuid.UUID
	EventID      uuid.UUID
	AutomationID uuid.UUID
	Version      int
	Kind         string
	Outcome      string
	// EnrollmentID is the enrollment started, resumed or ended, or the
	// earlier one of a "once" automation; zero when there is none.
	EnrollmentID uuid.UUID
	// Detail explains the outcome: the expression and the values it read,
	// an error, the event that took a wait first.
	Detail map[string]any
	// At is when the event was received.
	At time.Time

	// What the decision writes when it takes effect.
	trace  string
	start  *intent.Start
	exitOn []string
	exit   *Candidate
	wait   *Wait
	event  event.Event
	// events are every event a wait on several events matched, when this
	// decision resumes it.
	events []event.Event
	// won says a claim made for the decision succeeded (set by Settle);
	// decisions that claim nothing are settled from the start.
	won bool
	// queued says the enrollment waits for room under its limits.
	queued bool
}

// DetailJSON is Detail as stored.
func (d *Decision) DetailJSON() json.RawMessage {
	if len(d.Detail) == 0 {
		return json.RawMessage(`{}`)
	}
	raw, err := json.Marshal(d.Detail)
	if err != nil {
		return json.RawMessage(`{}`)
	}
	return raw
}

// Trigger is an automation whose trigger names an event, as the
// workspace's cache holds it: its current version, compiled.
type Trigger struct {
	AutomationID uuid.UUID
	Version      int
	Enabled      bool
	Definition   definition.Automation
	// Condition is the compiled trigger condition, nil when there is none.
	Condition *conditions.Program
	// ReadsContact says the condition may read the contact.
	ReadsContact bool
}

// Automations answers from memory for the workspaces it was loaded for.
type Automations interface {
	// Automates reports whether the workspace has any automation, enabled
	// or not (as far as the cache knows; the record path checks the table
	// for workspaces it knows none of).
	Automates(workspaceID uuid.UUID) bool
	// Triggers returns the automations, enabled or not, whose trigger
	// names the event name.
	Triggers(workspaceID uuid.UUID, name string) []Trigger
	// Conditions compiles and evaluates wait conditions.
	Conditions() *conditions.Env
}

// Fresh is an event recorded (not a duplicate) in the group, of a
// workspace with automations.
type Fresh struct {
	Item        Item
	WorkspaceID uuid.UUID
	ContactID   uuid.UUID
	Event       event.Event
	// Trace is the W3C trace context of the request, carried by intents.
	Trace string
}

// ContactEvent keys the indexes by contact and event name.
type ContactEvent struct {
	Contact uuid.UUID
	Name    string
}

// Candidate is an active enrollment that an exit event may end. One
// enrollment is one candidate, however many exit events it lists.
type Candidate struct {
	EnrollmentID uuid.UUID
	WorkflowID   string
	WorkspaceID  uuid.UUID
	AutomationID uuid.UUID
	Version      int
	// TriggerEventID is the event that started it.
	TriggerEventID uuid.UUID
	// fresh marks an enrollment the group started: its exit is written
	// with its row, not claimed.
	fresh bool
	// exitEvent is the event that ends it within the group, if any.
	exitEvent uuid.UUID
}

// Wait is an enrollment waiting for an event.
type Wait struct {
	EnrollmentID uuid.UUID
	StepID       string
	WorkflowID   string
	WorkspaceID  uuid.UUID
	AutomationID uuid.UUID
	Version      int
	ContactID    uuid.UUID
	// EventName is the awaited name of this row of the wait index: a wait
	// on several events has one row per name.
	EventName string
	// Mode is "" for a wait on one event, or the definition's mode ("any",
	// "all") for a wait on several.
	Mode      string
	Condition string
	Trigger   json.RawMessage
	// BeganAt and AfterEventID are where the window opens: events recorded
	// after BeganAt, or at BeganAt with an id above AfterEventID (when
	// set), count. ExpiresAt is where it closes (excluded).
	BeganAt      time.Time
	AfterEventID uuid.UUID
	ExpiresAt    time.Time
}

// Key names the wait (not the row): its enrollment and step.
func (w *Wait) Key() WaitKey { return WaitKey{EnrollmentID: w.EnrollmentID, StepID: w.StepID} }

// claimKey names what one claim takes: the wait, or for a wait on all of
// several events one of its names.
func (w *Wait) claimKey() WaitKey {
	k := w.Key()
	if w.Mode != "" {
		k.Event = w.EventName
	}
	return k
}

// exclusive says one claim takes the whole wait: a wait on one event, or
// on any of several.
func (w *Wait) exclusive() bool { return w.Mode != string(definition.ModeAll) }

// Covers reports whether an event recorded at receivedAt with id falls
// inside the wait's window.
func (w *Wait) Covers(id uuid.UUID, receivedAt time.Time) bool {
	if !receivedAt.Before(w.ExpiresAt) || receivedAt.Before(w.BeganAt) {
		return false
	}
	return receivedAt.After(w.BeganAt) || w.AfterEventID == uuid.Nil || compareIDs(id, w.AfterEventID) > 0
}

func compareIDs(a, b uuid.UUID) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

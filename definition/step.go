package definition

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// StepType names the kind of a step; it is the "type" field of a step object.
type StepType string

// The step types. An interpreter switches on these and reads the matching field of Step.
const (
	// TypeDelay pauses; see DelayStep.
	TypeDelay StepType = "delay"
	// TypeWaitForEvent waits for an event or a timeout; see WaitStep.
	TypeWaitForEvent StepType = "wait_for_event"
	// TypeBranch chooses by condition; see BranchStep.
	TypeBranch StepType = "branch"
	// TypeWebhook posts JSON to a URL; see WebhookStep.
	TypeWebhook StepType = "webhook"
	// TypeSendEmail sends an email; see EmailStep.
	TypeSendEmail StepType = "send_email"
	// TypeUpdateContact changes the contact; see UpdateContactStep.
	TypeUpdateContact StepType = "update_contact"
	// TypeEmitEvent records an event for the contact; see EmitEventStep.
	TypeEmitEvent StepType = "emit_event"
)

// StepTypes lists every step type in a stable order, for messages and documentation.
var StepTypes = []StepType{
	TypeDelay, TypeWaitForEvent, TypeBranch, TypeWebhook, TypeSendEmail, TypeUpdateContact, TypeEmitEvent,
}

// Known reports whether t is one of StepTypes.
func (t StepType) Known() bool {
	return slices.Contains(StepTypes, t)
}

// Step is one node of the step tree: a typed union in which exactly the field that matches Type
// is non-nil. Its JSON form is flat, {"id": …, "type": …, <fields of the type>}.
type Step struct {
	// ID names the step, unique across the whole automation; activities use it, with the
	// workflow id, as their idempotency key.
	ID string
	// Type says which of the fields below is set.
	Type StepType

	// Delay is set when Type is TypeDelay.
	Delay *DelayStep
	// WaitForEvent is set when Type is TypeWaitForEvent.
	WaitForEvent *WaitStep
	// Branch is set when Type is TypeBranch.
	Branch *BranchStep
	// Webhook is set when Type is TypeWebhook.
	Webhook *WebhookStep
	// SendEmail is set when Type is TypeSendEmail.
	SendEmail *EmailStep
	// UpdateContact is set when Type is TypeUpdateContact.
	UpdateContact *UpdateContactStep
	// EmitEvent is set when Type is TypeEmitEvent.
	EmitEvent *EmitEventStep
}

// DelayStep pauses the enrollment.
type DelayStep struct {
	// Duration is how long to pause.
	Duration Duration `json:"duration"`
}

// WaitStep waits for the contact to send an event, then takes Yes if it arrives in time and
// No when Timeout passes first. It names one event (Event) or several (Events, with Mode):
// with ModeAny the first of them resumes it, with ModeAll it needs each of them inside the
// window, and its Yes steps can read every matched event as events["name"] ([ScopeStep]).
type WaitStep struct {
	// Event is the awaited event name; empty when Events is set.
	Event string `json:"event,omitempty"`
	// Events are the awaited event names of a wait on several events; empty when Event is set.
	Events []string `json:"events,omitempty"`
	// Mode says how many of Events resume the wait: ModeAny (the default) or ModeAll.
	Mode WaitMode `json:"mode,omitempty"`
	// Timeout is how long to wait before taking No.
	Timeout Duration `json:"timeout"`
	// Condition is an optional CEL condition ([ScopeWait]) the event must also satisfy.
	Condition string `json:"condition,omitempty"`
	// Yes runs when a matching event arrives.
	Yes []Step `json:"yes,omitempty"`
	// No runs on timeout.
	No []Step `json:"no,omitempty"`
}

// WaitMode says how many of a wait's events it needs.
type WaitMode string

const (
	// ModeAny resumes the wait on the first of its events; it is the default.
	ModeAny WaitMode = "any"
	// ModeAll resumes the wait once each of its events was recorded inside its window.
	ModeAll WaitMode = "all"
)

// MaxWaitEvents is the largest number of event names a wait_for_event step may list.
const MaxWaitEvents = 20

// Multi reports whether the step waits on a list of events (Events) rather than one (Event).
func (w *WaitStep) Multi() bool { return len(w.Events) > 0 }

// Names returns the awaited event names: Events, or Event alone.
func (w *WaitStep) Names() []string {
	if w.Multi() {
		return w.Events
	}
	return []string{w.Event}
}

// All reports whether the wait needs every one of its events.
func (w *WaitStep) All() bool { return w.Multi() && w.Mode == ModeAll }

// BranchStep takes Yes or No depending on a condition.
type BranchStep struct {
	// Condition is a CEL condition ([ScopeStep]).
	Condition string `json:"condition"`
	// Yes runs when the condition holds.
	Yes []Step `json:"yes,omitempty"`
	// No runs when it does not, including when it fails to evaluate.
	No []Step `json:"no,omitempty"`
}

// WebhookStep posts JSON to a URL.
type WebhookStep struct {
	// URL is the absolute http or https destination; it is a plain string, not CEL.
	URL string `json:"url"`
	// Body maps each top-level key of the posted JSON object to a CEL value ([ScopeStep]).
	Body ExprMap `json:"body,omitempty"`
	// Headers are extra request headers, plain strings.
	Headers Headers `json:"headers,omitempty"`
}

// EmailStep sends an email to one recipient. Every field is a CEL value ([ScopeStep]).
type EmailStep struct {
	// To is the recipient's address.
	To string `json:"to"`
	// Subject is the subject line.
	Subject string `json:"subject"`
	// Text is the plain-text body.
	Text string `json:"text"`
	// HTML is an optional HTML alternative to Text.
	HTML string `json:"html,omitempty"`
}

// UpdateContactStep changes the enrolled contact. Every value is a CEL value ([ScopeStep]); at
// least one field must be set.
type UpdateContactStep struct {
	// Properties are set on the contact, each to the value of its expression.
	Properties ExprMap `json:"properties,omitempty"`
	// FirstName, when set, replaces the contact's first name.
	FirstName string `json:"first_name,omitempty"`
	// LastName, when set, replaces the contact's last name.
	LastName string `json:"last_name,omitempty"`
}

// EmitEventStep records a new event for the enrolled contact, which may in turn trigger or
// resume other automations.
type EmitEventStep struct {
	// Name is a plain event name, not CEL.
	Name string `json:"name"`
	// Properties maps each property to a CEL value ([ScopeStep]).
	Properties ExprMap `json:"properties,omitempty"`
}

// ExprMap maps names to CEL value expressions. Range over Keys, never over the map itself:
// workflow code must not depend on Go's random map order.
type ExprMap map[string]string

// Keys returns the keys in sorted order.
func (m ExprMap) Keys() []string {
	return sortedKeys(m)
}

// Headers maps HTTP header names to plain string values. Range over Keys, never the map.
type Headers map[string]string

// Keys returns the header names in sorted order.
func (h Headers) Keys() []string {
	return sortedKeys(h)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// branch is a named list of nested steps, for walking the tree.
type branch struct {
	name  string
	steps []Step
}

// children returns the nested step lists of s in document order (yes, then no).
func (s *Step) children() []branch {
	switch {
	case s.Type == TypeWaitForEvent && s.WaitForEvent != nil:
		return []branch{{"yes", s.WaitForEvent.Yes}, {"no", s.WaitForEvent.No}}
	case s.Type == TypeBranch && s.Branch != nil:
		return []branch{{"yes", s.Branch.Yes}, {"no", s.Branch.No}}
	}
	return nil
}

// bodies returns every typed field of s keyed by the step type it belongs to, set or not.
func (s *Step) bodies() map[StepType]bool {
	return map[StepType]bool{
		TypeDelay:         s.Delay != nil,
		TypeWaitForEvent:  s.WaitForEvent != nil,
		TypeBranch:        s.Branch != nil,
		TypeWebhook:       s.Webhook != nil,
		TypeSendEmail:     s.SendEmail != nil,
		TypeUpdateContact: s.UpdateContact != nil,
		TypeEmitEvent:     s.EmitEvent != nil,
	}
}

// body returns the typed field that matches Type, or an error when the union is inconsistent:
// Type unknown, its field nil, or another field set as well.
func (s *Step) body() (any, error) {
	set := s.bodies()
	if !s.Type.Known() {
		return nil, fmt.Errorf("step %q: %s", s.ID, unknownTypeDetail(s.Type))
	}
	for _, t := range StepTypes {
		if set[t] != (t == s.Type) {
			return nil, fmt.Errorf("step %q: a %s step must set exactly its own %s settings", s.ID, s.Type, s.Type)
		}
	}
	switch s.Type {
	case TypeDelay:
		return s.Delay, nil
	case TypeWaitForEvent:
		return s.WaitForEvent, nil
	case TypeBranch:
		return s.Branch, nil
	case TypeWebhook:
		return s.Webhook, nil
	case TypeSendEmail:
		return s.SendEmail, nil
	case TypeUpdateContact:
		return s.UpdateContact, nil
	default:
		return s.EmitEvent, nil
	}
}

// MarshalJSON writes the flat form: id and type first, then the fields of the type.
func (s Step) MarshalJSON() ([]byte, error) {
	body, err := s.body()
	if err != nil {
		return nil, err
	}
	fields, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	head, err := json.Marshal(struct {
		ID   string   `json:"id"`
		Type StepType `json:"type"`
	}{s.ID, s.Type})
	if err != nil {
		return nil, err
	}
	if len(fields) <= 2 { // "{}": the type has no fields set
		return head, nil
	}
	out := append(head[:len(head)-1], ',')
	return append(out, fields[1:]...), nil
}

// UnmarshalJSON decodes one step object strictly, with the rules Parse applies to every step.
func (s *Step) UnmarshalJSON(data []byte) error {
	var d decoder
	step := d.step("", data, 1)
	if len(d.list) > 0 {
		return &ParseError{Problems: sortProblems(d.list)}
	}
	*s = step
	return nil
}

func unknownTypeDetail(t StepType) string {
	names := make([]string, len(StepTypes))
	for i, st := range StepTypes {
		names[i] = string(st)
	}
	return fmt.Sprintf("unknown step type %q; use one of %s", t, strings.Join(names, ", "))
}

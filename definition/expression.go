package definition

import (
	"fmt"
	"iter"
	"slices"
)

// Scope says where an expression sits and therefore what the interpreter binds to its variables.
// Every scope declares the same four variables (event, trigger, contact, now) so that an
// expression type-checks identically wherever it is moved; the scope only changes their values.
type Scope int

const (
	// ScopeTrigger is the trigger condition. event and trigger are both the event being matched,
	// contact is the contact who sent it, and now is the time of matching.
	ScopeTrigger Scope = iota + 1
	// ScopeWait is a wait_for_event condition. event is the candidate event that just arrived and
	// trigger is the event that started the enrollment.
	ScopeWait
	// ScopeStep is a branch condition or a value computed by a step. trigger is the event that
	// started the enrollment, and event is bound to that same trigger event for convenience, so
	// that event.properties.x and trigger.properties.x mean the same thing here. Inside the yes
	// steps of a wait_for_event step that lists events, events maps each of its matched events'
	// names to the event (events["order.paid"].properties.amount); see MatchedEventsReader.
	ScopeStep
)

// String names the scope for messages.
func (s Scope) String() string {
	switch s {
	case ScopeTrigger:
		return "trigger condition"
	case ScopeWait:
		return "wait condition"
	case ScopeStep:
		return "step"
	default:
		return fmt.Sprintf("Scope(%d)", int(s))
	}
}

// ExpressionChecker compiles CEL expressions without running them. Package conditions provides
// the implementation; the interface lives here so that this package stays free of CEL.
type ExpressionChecker interface {
	// CheckCondition returns an error, worded for the author, when expr is not a valid condition
	// in scope: it does not compile, does not yield a bool, or could cost too much to evaluate.
	CheckCondition(expr string, scope Scope) error
	// CheckValue returns an error, worded for the author, when expr is not a valid value
	// expression in scope: it does not compile or could cost too much to evaluate.
	CheckValue(expr string, scope Scope) error
}

// MatchedEventsReader is implemented by an ExpressionChecker that can also say which matched
// events an expression reads from the events variable, which is bound only in the yes steps of a
// wait_for_event step that lists events. Validate then refuses events read anywhere else, and
// names that no enclosing wait awaits.
type MatchedEventsReader interface {
	// MatchedEvents reports whether expr reads the events variable at all, and the event names
	// it reads with a constant key (events["order.paid"], events.signup), in source order.
	MatchedEvents(expr string) (reads bool, names []string)
}

// matchedEvents maps the pointer of every step whose expressions may read events to the names
// bound there: those of every wait_for_event step with events whose yes list encloses it.
func (a *Automation) matchedEvents() map[string][]string {
	out := map[string][]string{}
	var walk func(steps []Step, at pointer, bound []string)
	walk = func(steps []Step, at pointer, bound []string) {
		for i := range steps {
			s := &steps[i]
			ptr := at.index(i)
			if len(bound) > 0 {
				out[string(ptr)] = bound
			}
			for _, c := range s.children() {
				inner := bound
				if c.name == "yes" && s.Type == TypeWaitForEvent && s.WaitForEvent != nil && s.WaitForEvent.Multi() {
					inner = append(slices.Clip(bound), s.WaitForEvent.Events...)
				}
				walk(c.steps, ptr.key(c.name), inner)
			}
		}
	}
	walk(a.Steps, "/steps", nil)
	return out
}

// Expression is one CEL expression found in a definition.
type Expression struct {
	// Pointer locates the expression in the document, such as "/steps/0/body/email".
	Pointer string
	// Text is the CEL source.
	Text string
	// Scope says what its variables are bound to.
	Scope Scope
	// Condition is true for conditions, which must yield a bool, and false for values.
	Condition bool
}

// Expressions yields every non-empty CEL expression of the automation in document order, map
// entries by sorted key. Validate checks these; a service can also use it to compile them ahead of
// time.
func (a *Automation) Expressions() iter.Seq[Expression] {
	return func(yield func(Expression) bool) {
		if a.Trigger.Condition != "" {
			if !yield(Expression{"/trigger/condition", a.Trigger.Condition, ScopeTrigger, true}) {
				return
			}
		}
		for ptr, s := range a.AllSteps() {
			for _, e := range s.expressions(pointer(ptr)) {
				if e.Text != "" && !yield(e) {
					return
				}
			}
		}
	}
}

// expressions lists the expressions held directly by s (not by its nested steps), empty ones
// included; the caller filters.
func (s *Step) expressions(at pointer) []Expression {
	value := func(field, text string) Expression {
		return Expression{string(at.key(field)), text, ScopeStep, false}
	}
	values := func(field string, m ExprMap) []Expression {
		var out []Expression
		for _, k := range m.Keys() {
			out = append(out, Expression{string(at.key(field).key(k)), m[k], ScopeStep, false})
		}
		return out
	}
	switch {
	case s.Type == TypeWaitForEvent && s.WaitForEvent != nil:
		return []Expression{{string(at.key("condition")), s.WaitForEvent.Condition, ScopeWait, true}}
	case s.Type == TypeBranch && s.Branch != nil:
		return []Expression{{string(at.key("condition")), s.Branch.Condition, ScopeStep, true}}
	case s.Type == TypeWebhook && s.Webhook != nil:
		return values("body", s.Webhook.Body)
	case s.Type == TypeSendEmail && s.SendEmail != nil:
		e := s.SendEmail
		return []Expression{value("to", e.To), value("subject", e.Subject), value("text", e.Text), value("html", e.HTML)}
	case s.Type == TypeUpdateContact && s.UpdateContact != nil:
		u := s.UpdateContact
		return append(values("properties", u.Properties), value("first_name", u.FirstName), value("last_name", u.LastName))
	case s.Type == TypeEmitEvent && s.EmitEvent != nil:
		return values("properties", s.EmitEvent.Properties)
	}
	return nil
}

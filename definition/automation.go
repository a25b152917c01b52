package definition

import "iter"

// Limits on the size and shape of a definition. They keep a snapshot well under Temporal's
// 2 MiB payload limit and keep an interpreter's recursion and history bounded.
const (
	// MaxNameLength is the longest automation name, in characters.
	MaxNameLength = 200
	// MaxSteps is the largest number of steps in one automation, counting nested ones.
	MaxSteps = 200
	// MaxDepth is the deepest nesting of steps; top-level steps are at depth 1.
	MaxDepth = 10
	// MaxExitEvents is the largest number of event names under exit_on.
	MaxExitEvents = 50
	// MaxMapEntries is the largest number of entries in body, properties or headers.
	MaxMapEntries = 100
	// MaxDocumentSize is the largest definition document Parse accepts, in bytes.
	MaxDocumentSize = 256 << 10
)

// Automation is a decoded automation definition. Its JSON form is the authored document; see
// the package documentation.
type Automation struct {
	// Name is what people call the automation; 1 to MaxNameLength characters.
	Name string `json:"name"`
	// Trigger decides which events enroll a contact.
	Trigger Trigger `json:"trigger"`
	// ExitOn lists event names that end an active enrollment of the same contact early.
	ExitOn []string `json:"exit_on,omitempty"`
	// Steps run in order for every enrollment.
	Steps []Step `json:"steps"`
	// Limits, when set, bound how many enrollments the automation starts.
	Limits *Limits `json:"limits,omitempty"`
}

// UnmarshalJSON decodes strictly with the same rules as Parse, so a snapshot handed to a workflow
// can never hold fields the interpreter silently ignores. It does not run Validate.
func (a *Automation) UnmarshalJSON(data []byte) error {
	parsed, problems := Parse(data)
	if len(problems) > 0 {
		return &ParseError{Problems: problems}
	}
	*a = *parsed
	return nil
}

// Frequency says how often one contact may be enrolled in the same automation.
type Frequency string

const (
	// FrequencyEvery enrolls the contact on every matching event; it is the default.
	FrequencyEvery Frequency = "every"
	// FrequencyOnce enrolls a contact at most once, ever.
	FrequencyOnce Frequency = "once"
)

// Trigger selects the events that start an enrollment.
type Trigger struct {
	// Event is the event name that starts an enrollment.
	Event string `json:"event"`
	// Condition is an optional CEL condition ([ScopeTrigger]); empty means every event matches.
	Condition string `json:"condition,omitempty"`
	// Frequency is FrequencyEvery, FrequencyOnce, or empty, which means FrequencyEvery. It is kept
	// as written so that a definition round-trips unchanged.
	Frequency Frequency `json:"frequency,omitempty"`
}

// Once reports whether a contact may be enrolled at most once.
func (t Trigger) Once() bool {
	return t.Frequency == FrequencyOnce
}

// AllSteps yields every step in document order (a step before the steps nested in it, yes
// before no) with its JSON pointer, such as "/steps/2/yes/0". Stopping the loop early is fine.
func (a *Automation) AllSteps() iter.Seq2[string, *Step] {
	return func(yield func(string, *Step) bool) {
		walkSteps(a.Steps, "/steps", yield)
	}
}

// walkSteps visits steps in document order and returns false once visit has asked to stop.
func walkSteps(steps []Step, at pointer, visit func(string, *Step) bool) bool {
	for i := range steps {
		s := &steps[i]
		ptr := at.index(i)
		if !visit(string(ptr), s) {
			return false
		}
		for _, c := range s.children() {
			if !walkSteps(c.steps, ptr.key(c.name), visit) {
				return false
			}
		}
	}
	return true
}

// FindStep returns the step with the given id anywhere in the tree, or nil if there is none.
func (a *Automation) FindStep(id string) *Step {
	for _, s := range a.AllSteps() {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// Next returns the step that runs after the step with the given id has finished, including
// whichever of its yes or no lists ran: the next sibling, or else whatever follows the enclosing
// step, and so on outwards. next is nil when the automation ends there; found is false when no
// step has that id. An interpreter can therefore resume from nothing more than a step id.
func (a *Automation) Next(id string) (next *Step, found bool) {
	return nextStep(a.Steps, id, nil)
}

// nextStep searches steps for id; after is the step that follows the whole list.
func nextStep(steps []Step, id string, after *Step) (*Step, bool) {
	for i := range steps {
		following := after
		if i+1 < len(steps) {
			following = &steps[i+1]
		}
		if steps[i].ID == id {
			return following, true
		}
		for _, c := range steps[i].children() {
			if next, ok := nextStep(c.steps, id, following); ok {
				return next, true
			}
		}
	}
	return nil, false
}

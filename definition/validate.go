package definition

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// Details shared by Parse and Validate, worded identically so that Load can drop duplicates.
const requiredDetail = "is required"

var depthDetail = fmt.Sprintf("steps are nested more than %d levels deep", MaxDepth)

// Validate applies every rule a saved definition must satisfy beyond its JSON shape: names and
// lengths, event names, durations, unique step ids, the size limits, and each CEL expression,
// which check compiles (its error text becomes the problem's detail). A nil check skips the
// expressions, for callers that only need the structure.
//
// Problems are collected, not just the first, and sorted like Parse's. Validate does not modify a.
func Validate(a *Automation, check ExpressionChecker) []Problem {
	if a == nil {
		return []Problem{{Pointer: "", Detail: "definition is missing"}}
	}
	v := validator{ids: map[string]pointer{}, automation: a}
	v.name(a.Name)
	v.trigger(a.Trigger)
	v.exitOn(a.ExitOn)
	v.limits(a.Limits)
	if len(a.Steps) == 0 {
		v.add("/steps", "at least one step is required")
	}
	v.steps(a.Steps, "/steps", 1)
	if v.count > MaxSteps {
		v.add("/steps", "the automation has %d steps; at most %d are allowed", v.count, MaxSteps)
	}
	if check != nil {
		matched, _ := check.(MatchedEventsReader)
		var bound map[string][]string
		if matched != nil {
			bound = a.matchedEvents()
		}
		for e := range a.Expressions() {
			checkFn := check.CheckValue
			if e.Condition {
				checkFn = check.CheckCondition
			}
			if err := checkFn(e.Text, e.Scope); err != nil {
				v.add(pointer(e.Pointer), "%v", err)
				continue
			}
			if matched != nil {
				v.matchedEvents(e, matched, bound)
			}
		}
	}
	return sortProblems(v.list)
}

// validator carries what rules across steps need: ids seen so far and the step count.
type validator struct {
	problems
	automation *Automation
	ids        map[string]pointer
	count      int
}

func (v *validator) name(name string) {
	switch n := utf8.RuneCountInString(name); {
	case strings.TrimSpace(name) == "":
		v.add("/name", requiredDetail)
	case n > MaxNameLength:
		v.add("/name", "is %d characters long; at most %d are allowed", n, MaxNameLength)
	}
}

func (v *validator) trigger(t Trigger) {
	v.eventName("/trigger/event", t.Event)
	switch t.Frequency {
	case "", FrequencyEvery, FrequencyOnce:
	default:
		v.add("/trigger/frequency", "unknown frequency %q; use %q or %q", t.Frequency, FrequencyEvery, FrequencyOnce)
	}
}

func (v *validator) exitOn(names []string) {
	if len(names) > MaxExitEvents {
		v.add("/exit_on", "lists %d events; at most %d are allowed", len(names), MaxExitEvents)
	}
	first := map[string]int{}
	for i, name := range names {
		at := pointer("/exit_on").index(i)
		if j, dup := first[name]; dup {
			v.add(at, "%q is already listed at /exit_on/%d", name, j)
			continue
		}
		first[name] = i
		v.eventName(at, name)
	}
}

// steps validates a list and, below the depth limit, the lists nested in it.
func (v *validator) steps(steps []Step, at pointer, depth int) {
	for i := range steps {
		s := &steps[i]
		ptr := at.index(i)
		v.count++
		if depth > MaxDepth {
			v.add(ptr, "%s", depthDetail)
			continue
		}
		v.step(s, ptr)
		for _, c := range s.children() {
			v.steps(c.steps, ptr.key(c.name), depth+1)
		}
	}
}

func (v *validator) step(s *Step, at pointer) {
	v.stepID(at.key("id"), s.ID)
	switch {
	case s.Type == "":
		v.add(at.key("type"), requiredDetail)
		return
	case !s.Type.Known():
		v.add(at.key("type"), "%s", unknownTypeDetail(s.Type))
		return
	}
	if _, err := s.body(); err != nil {
		v.add(at, "a %s step must set exactly its own %s settings", s.Type, s.Type)
		return
	}
	switch s.Type {
	case TypeDelay:
		v.duration(at.key("duration"), s.Delay.Duration)
	case TypeWaitForEvent:
		v.wait(at, s.WaitForEvent)
		v.duration(at.key("timeout"), s.WaitForEvent.Timeout)
	case TypeBranch:
		v.required(at.key("condition"), s.Branch.Condition)
	case TypeWebhook:
		v.webhookURL(at.key("url"), s.Webhook.URL)
		v.exprMap(at.key("body"), s.Webhook.Body)
		v.headers(at.key("headers"), s.Webhook.Headers)
	case TypeSendEmail:
		v.required(at.key("to"), s.SendEmail.To)
		v.required(at.key("subject"), s.SendEmail.Subject)
		v.required(at.key("text"), s.SendEmail.Text)
	case TypeUpdateContact:
		u := s.UpdateContact
		if len(u.Properties) == 0 && u.FirstName == "" && u.LastName == "" {
			v.add(at, "an update_contact step needs properties, first_name or last_name")
		}
		v.exprMap(at.key("properties"), u.Properties)
	case TypeEmitEvent:
		v.eventName(at.key("name"), s.EmitEvent.Name)
		v.exprMap(at.key("properties"), s.EmitEvent.Properties)
		t := v.automation.Trigger
		// The enrollment would emit its own trigger and enroll the contact again, forever. Loops
		// through other automations cannot be seen from here; this one can.
		if s.EmitEvent.Name != "" && s.EmitEvent.Name == t.Event && !t.Once() {
			v.add(at.key("name"), "emitting the trigger event %q would re-enroll the contact without end; use frequency %q or another event", t.Event, FrequencyOnce)
		}
	}
}

// matchedEvents refuses an expression that reads the events variable where nothing binds it, or
// reads an event that no enclosing wait awaits.
func (v *validator) matchedEvents(e Expression, r MatchedEventsReader, bound map[string][]string) {
	reads, names := r.MatchedEvents(e.Text)
	if !reads {
		return
	}
	var here []string
	if e.Scope == ScopeStep {
		for step, b := range bound {
			if within(e.Pointer, step) && len(b) > len(here) {
				here = b
			}
		}
	}
	if len(here) == 0 {
		v.add(pointer(e.Pointer), "events is bound only in the yes steps of a wait_for_event step that lists events")
		return
	}
	for _, name := range names {
		if !slices.Contains(here, name) {
			v.add(pointer(e.Pointer), "events[%q]: no enclosing wait_for_event step awaits %q (it awaits %s)",
				name, name, strings.Join(here, ", "))
		}
	}
}

// wait checks what a wait_for_event step awaits: one event, or a list of distinct events with a
// mode, never both.
func (v *validator) wait(at pointer, w *WaitStep) {
	switch {
	case w.Event != "" && w.Events != nil:
		v.add(at.key("events"), "set either event (one event) or events (several), not both")
		return
	case w.Events == nil:
		v.eventName(at.key("event"), w.Event)
		if w.Mode != "" {
			v.add(at.key("mode"), "mode applies to a wait on several events; list them under events")
		}
		return
	case len(w.Events) == 0:
		v.add(at.key("events"), "lists no events; name at least one")
	case len(w.Events) > MaxWaitEvents:
		v.add(at.key("events"), "lists %d events; at most %d are allowed", len(w.Events), MaxWaitEvents)
	}
	switch w.Mode {
	case "", ModeAny, ModeAll:
	default:
		v.add(at.key("mode"), "unknown mode %q; use %q or %q", w.Mode, ModeAny, ModeAll)
	}
	first := map[string]int{}
	for i, name := range w.Events {
		ptr := at.key("events").index(i)
		if j, dup := first[name]; dup {
			v.add(ptr, "%q is already listed at %s", name, at.key("events").index(j))
			continue
		}
		first[name] = i
		v.eventName(ptr, name)
	}
}

func (v *validator) required(at pointer, s string) {
	if strings.TrimSpace(s) == "" {
		v.add(at, requiredDetail)
	}
}

func (v *validator) eventName(at pointer, name string) {
	if name == "" {
		v.add(at, requiredDetail)
		return
	}
	if err := CheckEventName(name); err != nil {
		v.add(at, "%v", err)
	}
}

func (v *validator) stepID(at pointer, id string) {
	if err := checkStepID(id); err != nil {
		v.add(at, "%v", err)
		return
	}
	if first, dup := v.ids[id]; dup {
		v.add(at, "step id %q is already used at %s", id, first)
		return
	}
	v.ids[id] = at
}

func (v *validator) duration(at pointer, d Duration) {
	switch {
	case d.d == 0 && d.text == "":
		v.add(at, requiredDetail)
	case d.d <= 0:
		v.add(at, "must be greater than zero")
	case d.d > MaxDuration:
		v.add(at, "%s is longer than the maximum of 365d", d)
	}
}

func (v *validator) webhookURL(at pointer, raw string) {
	if raw == "" {
		v.add(at, requiredDetail)
		return
	}
	if len(raw) > maxURLLength {
		v.add(at, "is %d bytes long; at most %d are allowed", len(raw), maxURLLength)
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		v.add(at, "is not a valid URL")
	case u.Scheme != "http" && u.Scheme != "https":
		v.add(at, "must be an absolute http or https URL")
	case u.Host == "":
		v.add(at, "has no host")
	case u.User != nil:
		// Credentials in the URL would be stored and shown with the definition; headers are the
		// place for them.
		v.add(at, "must not contain credentials; send them in headers")
	}
}

// maxURLLength is the longest webhook URL; longer ones are refused by many servers anyway.
const maxURLLength = 2048

func (v *validator) exprMap(at pointer, m ExprMap) {
	if len(m) > MaxMapEntries {
		v.add(at, "has %d entries; at most %d are allowed", len(m), MaxMapEntries)
	}
	for _, k := range m.Keys() {
		if err := checkKey(k); err != nil {
			v.add(at.key(k), "%v", err)
		}
		if strings.TrimSpace(m[k]) == "" {
			v.add(at.key(k), "expression must not be empty; use '' for an empty string")
		}
	}
}

func (v *validator) headers(at pointer, h Headers) {
	if len(h) > MaxMapEntries {
		v.add(at, "has %d entries; at most %d are allowed", len(h), MaxMapEntries)
	}
	for _, k := range h.Keys() {
		if err := checkHeader(k, h[k]); err != nil {
			v.add(at.key(k), "%v", err)
		}
	}
}

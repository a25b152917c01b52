package api

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/store"
)

// Warning codes of an automation checked against the event catalog. They
// never stop a save: an automation may be written before its events are.
const (
	warnUndeclaredEvent      = "undeclared_event"
	warnUndeclaredProperty   = "undeclared_property"
	warnPropertyTypeMismatch = "property_type_mismatch"
)

// automationWarning is one thing the catalog says about an automation.
type automationWarning struct {
	Pointer string `json:"pointer"`
	Code    string `json:"code"`
	Detail  string `json:"detail"`
}

// namedEvent is an event name an automation uses, with where.
type namedEvent struct {
	pointer, name, role string
}

// automationWarnings checks an automation against the workspace's catalog:
// every trigger, wait, exit and emitted name that is not declared, and
// every condition or value that reads a property its event's schema does
// not declare or compares it with a literal of another type.
func (s *Server) automationWarnings(ctx context.Context, ws uuid.UUID, a *definition.Automation) ([]automationWarning, error) {
	named := []namedEvent{{"/trigger/event", a.Trigger.Event, "trigger"}}
	for i, n := range a.ExitOn {
		named = append(named, namedEvent{fmt.Sprintf("/exit_on/%d", i), n, "exit"})
	}
	waits := map[string]string{} // the pointer of a wait's condition → its event
	for ptr, st := range a.AllSteps() {
		switch {
		case st.Type == definition.TypeWaitForEvent && st.WaitForEvent != nil:
			named = append(named, namedEvent{ptr + "/event", st.WaitForEvent.Event, "wait"})
			waits[ptr+"/condition"] = st.WaitForEvent.Event
		case st.Type == definition.TypeEmitEvent && st.EmitEvent != nil:
			named = append(named, namedEvent{ptr + "/name", st.EmitEvent.Name, "emitted"})
		}
	}
	var names []string
	for _, n := range named {
		if !slices.Contains(names, n.name) {
			names = append(names, n.name)
		}
	}
	entries, err := s.store.EventTypesByName(ctx, ws, names)
	if err != nil {
		return nil, err
	}
	types := map[string]*store.EventType{}
	for _, e := range entries {
		if e.Declared {
			types[e.Name] = e.Type
		}
	}
	out := []automationWarning{}
	for _, n := range named {
		if types[n.name] == nil {
			out = append(out, automationWarning{Pointer: n.pointer, Code: warnUndeclaredEvent,
				Detail: fmt.Sprintf("%s event %q is not declared in the event catalog; declare it (POST /v1/event-types) or check its spelling", n.role, n.name)})
		}
	}
	trigger := types[a.Trigger.Event]
	for expr := range a.Expressions() {
		kind := conditions.KindValue
		if expr.Condition {
			kind = conditions.KindCondition
		}
		prg, err := s.cfg.Conditions.Compile(expr.Text, kind)
		if err != nil {
			continue // the definition was validated; nothing to add
		}
		// Which event type each variable is, in this expression's scope.
		bound := map[string]*store.EventType{"event": trigger, "trigger": trigger}
		if expr.Scope == definition.ScopeWait {
			bound["event"] = types[waits[expr.Pointer]]
		}
		out = append(out, propertyWarnings(expr.Pointer, prg, bound)...)
	}
	return out, nil
}

// propertyWarnings checks the properties an expression reads, and the
// literals it compares them with, against the schemas of the types its
// variables are bound to.
func propertyWarnings(pointer string, prg *conditions.Program, bound map[string]*store.EventType) []automationWarning {
	var out []automationWarning
	for _, path := range prg.Paths() {
		t, prop, ok := schemaProperty(path, bound)
		if ok && prop == nil {
			out = append(out, automationWarning{Pointer: pointer, Code: warnUndeclaredProperty,
				Detail: fmt.Sprintf("%s is not declared by the schema of %q (version %d)", strings.Join(path, "."), t.Name,
					*t.SchemaVersion)})
		}
	}
	for _, cmp := range prg.Comparisons() {
		t, prop, ok := schemaProperty(cmp.Path, bound)
		if !ok || prop == nil {
			continue
		}
		if want := schemaTypes(prop); len(want) > 0 && !typeFits(cmp.Literal, want) {
			out = append(out, automationWarning{Pointer: pointer, Code: warnPropertyTypeMismatch,
				Detail: fmt.Sprintf("%s is %s in the schema of %q (version %d) but is compared with a %s",
					strings.Join(cmp.Path, "."), strings.Join(want, " or "), t.Name, *t.SchemaVersion, cmp.Literal)})
		}
	}
	return out
}

// schemaProperty finds the schema of the property a path reads
// (event.properties.a.b). ok is false when nothing can be said: the path
// is not into an event's properties, its type has no schema, or the schema
// is not plain enough at some level (no "properties", or composition) to
// know. prop is nil when the schema does not declare the property.
func schemaProperty(path []string, bound map[string]*store.EventType) (*store.EventType, map[string]any, bool) {
	if len(path) < 3 || path[1] != "properties" {
		return nil, nil, false
	}
	t := bound[path[0]]
	if t == nil || t.Schema == nil || t.SchemaVersion == nil {
		return nil, nil, false
	}
	var cur map[string]any
	if json.Unmarshal(t.Schema, &cur) != nil {
		return nil, nil, false
	}
	for _, key := range path[2:] {
		for _, k := range []string{"$ref", "allOf", "anyOf", "oneOf", "if", "patternProperties", "$dynamicRef", "dependentSchemas"} {
			if _, ok := cur[k]; ok {
				return nil, nil, false
			}
		}
		props, ok := cur["properties"].(map[string]any)
		if !ok {
			return nil, nil, false
		}
		next, ok := props[key].(map[string]any)
		if !ok {
			return t, nil, true
		}
		cur = next
	}
	return t, cur, true
}

// schemaTypes lists the JSON types a property's schema allows, from
// "type" or else from "enum"/"const"; none when it does not say.
func schemaTypes(prop map[string]any) []string {
	switch t := prop["type"].(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, e := range t {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// typeFits says a literal of JSON type lit can equal a value of one of the
// schema's types.
func typeFits(lit string, want []string) bool {
	for _, w := range want {
		switch {
		case w == lit:
			return true
		case lit == "number" && w == "integer":
			return true
		}
	}
	return false
}

// automationWithWarnings is a saved automation with what the catalog says
// of it.
type automationWithWarnings struct {
	automationResponse
	Warnings []automationWarning `json:"warnings"`
}

// answerWithWarnings answers a save with the automation and its warnings.
// The save has happened: a failure to read the catalog is logged and the
// answer goes without warnings rather than as an error.
func (s *Server) answerWithWarnings(c *gin.Context, status int, a *definition.Automation, out automationResponse) {
	warnings, err := s.automationWarnings(c.Request.Context(), who(c).WorkspaceID, a)
	if err != nil {
		s.log.WarnContext(c.Request.Context(), "automation warnings", "error", err.Error())
		warnings = []automationWarning{}
	}
	c.JSON(status, automationWithWarnings{automationResponse: out, Warnings: warnings})
}

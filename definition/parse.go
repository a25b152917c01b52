package definition

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Parse decodes a definition document field by field, so that each unknown field, wrong type
// and unknown step type is reported at its own JSON pointer, all at once. A JSON null counts as
// an absent field. Parse checks shape only; run Validate (or use Load) for the rules.
//
// The automation is returned even when there are problems, holding whatever could be decoded, so
// that Validate can report on the rest in the same round trip; it must not be used otherwise. It
// is nil only when the document is not a JSON object at all. Problems are sorted by pointer,
// token by token with array indexes compared as numbers, then by detail.
func Parse(data []byte) (*Automation, []Problem) {
	var d decoder
	if len(data) > MaxDocumentSize {
		d.add("", "definition is %d bytes; at most %d are allowed", len(data), MaxDocumentSize)
		return nil, d.list
	}
	members, ok := d.members("", data)
	if !ok {
		return nil, d.list
	}
	a := &Automation{}
	d.apply("", members, fieldSet{
		"name":    func(p pointer, v json.RawMessage) { a.Name = d.str(p, v) },
		"trigger": func(p pointer, v json.RawMessage) { a.Trigger = d.trigger(p, v) },
		"exit_on": func(p pointer, v json.RawMessage) { a.ExitOn = d.strs(p, v) },
		"steps":   func(p pointer, v json.RawMessage) { a.Steps = d.steps(p, v, 1) },
		"limits":  func(p pointer, v json.RawMessage) { a.Limits = d.limits(p, v) },
	})
	return a, sortProblems(d.list)
}

// Load parses and validates a document in one go: the problems of both, with validation problems
// dropped where parsing already reported on the same spot (a field of the wrong type need not
// also be called missing). The automation is nil whenever there is any problem.
func Load(data []byte, check ExpressionChecker) (*Automation, []Problem) {
	a, parsed := Parse(data)
	if a == nil {
		return nil, parsed
	}
	all := parsed
	for _, v := range Validate(a, check) {
		if !slices.ContainsFunc(parsed, func(p Problem) bool { return within(v.Pointer, p.Pointer) }) {
			all = append(all, v)
		}
	}
	if len(all) > 0 {
		return nil, sortProblems(all)
	}
	return a, nil
}

// decoder walks raw JSON and records problems instead of stopping at the first one.
type decoder struct {
	problems
}

// member is one name/value pair of a JSON object, in document order.
type member struct {
	name  string
	value json.RawMessage
}

// fieldSet maps each allowed field of an object to the function that decodes it.
type fieldSet map[string]func(at pointer, value json.RawMessage)

// members splits a JSON object into its members, reporting a value that is not an object and
// repeated names (encoding/json would silently keep the last one).
func (d *decoder) members(at pointer, raw json.RawMessage) ([]member, bool) {
	if kind := jsonKind(raw); kind != kindObject {
		if kind == "" {
			d.add(at, "invalid JSON: %s", syntaxDetail(raw))
		} else {
			d.add(at, "must be an object, not %s", kind)
		}
		return nil, false
	}
	all, err := splitObject(raw)
	if err != nil { // unreachable after jsonKind's validation, but never trust that silently
		d.add(at, "invalid JSON: %v", err)
		return nil, false
	}
	out := all[:0]
	seen := map[string]bool{}
	for _, m := range all {
		if seen[m.name] {
			d.add(at.key(m.name), "field %q appears more than once", m.name)
			continue
		}
		seen[m.name] = true
		out = append(out, m)
	}
	return out, true
}

// splitObject reads the members of a valid JSON object in document order.
func splitObject(raw json.RawMessage) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // the opening brace
		return nil, err
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, err
		}
		name, _ := tok.(string) // the scanner only accepts strings as object keys
		out = append(out, member{name, value})
	}
	return out, nil
}

// apply decodes each member with its field function and reports the members that have none.
func (d *decoder) apply(at pointer, members []member, fields fieldSet) {
	for _, m := range members {
		decode, ok := fields[m.name]
		switch {
		case !ok:
			d.add(at.key(m.name), "%s", unknownFieldDetail(m.name, fields))
		case !isNull(m.value):
			decode(at.key(m.name), m.value)
		}
	}
}

func (d *decoder) trigger(at pointer, raw json.RawMessage) Trigger {
	var t Trigger
	if members, ok := d.members(at, raw); ok {
		d.apply(at, members, fieldSet{
			"event":     func(p pointer, v json.RawMessage) { t.Event = d.str(p, v) },
			"condition": func(p pointer, v json.RawMessage) { t.Condition = d.str(p, v) },
			"frequency": func(p pointer, v json.RawMessage) { t.Frequency = Frequency(d.str(p, v)) },
		})
	}
	return t
}

// steps decodes a list of steps. Below MaxDepth it stops descending: the nesting is reported
// once and a hostile document cannot make the decoder recurse without bound.
func (d *decoder) steps(at pointer, raw json.RawMessage, depth int) []Step {
	if depth > MaxDepth {
		d.add(at, "%s", depthDetail)
		return nil
	}
	items, ok := d.array(at, raw)
	if !ok || len(items) == 0 {
		return nil // an empty list is kept as nil so that decoding round-trips through omitempty
	}
	out := make([]Step, len(items))
	for i, item := range items {
		out[i] = d.step(at.index(i), item, depth)
	}
	return out
}

// step decodes one flat step object into the typed union. The type is read first because it
// decides which other fields exist; with a missing or unknown type the rest is not examined.
func (d *decoder) step(at pointer, raw json.RawMessage, depth int) Step {
	var s Step
	members, ok := d.members(at, raw)
	if !ok {
		return s
	}
	typeReported := false
	for _, m := range members {
		if isNull(m.value) {
			continue
		}
		switch m.name {
		case "id":
			s.ID = d.str(at.key("id"), m.value)
		case "type":
			before := len(d.list)
			s.Type = StepType(d.str(at.key("type"), m.value))
			typeReported = len(d.list) > before
		}
	}
	if s.Type == "" {
		if !typeReported {
			d.add(at.key("type"), "%s", requiredDetail)
		}
		return s
	}
	if !s.Type.Known() {
		d.add(at.key("type"), "%s", unknownTypeDetail(s.Type))
		return s
	}
	fields := d.stepFields(&s, depth)
	fields["id"] = func(pointer, json.RawMessage) {}
	fields["type"] = func(pointer, json.RawMessage) {}
	d.apply(at, members, fields)
	return s
}

// stepFields allocates the typed body of s and returns the decoders of its fields. It is the one
// place that says which fields each step type has.
func (d *decoder) stepFields(s *Step, depth int) fieldSet {
	switch s.Type {
	case TypeDelay:
		b := &DelayStep{}
		s.Delay = b
		return fieldSet{
			"duration": func(p pointer, v json.RawMessage) { b.Duration = d.duration(p, v) },
		}
	case TypeWaitForEvent:
		b := &WaitStep{}
		s.WaitForEvent = b
		return fieldSet{
			"event": func(p pointer, v json.RawMessage) { b.Event = d.str(p, v) },
			"events": func(p pointer, v json.RawMessage) {
				// An empty list stays one (not absent), so that Validate can say so.
				if b.Events = d.strs(p, v); b.Events == nil && jsonKind(v) == kindArray {
					b.Events = []string{}
				}
			},
			"mode":      func(p pointer, v json.RawMessage) { b.Mode = WaitMode(d.str(p, v)) },
			"timeout":   func(p pointer, v json.RawMessage) { b.Timeout = d.duration(p, v) },
			"condition": func(p pointer, v json.RawMessage) { b.Condition = d.str(p, v) },
			"yes":       func(p pointer, v json.RawMessage) { b.Yes = d.steps(p, v, depth+1) },
			"no":        func(p pointer, v json.RawMessage) { b.No = d.steps(p, v, depth+1) },
		}
	case TypeBranch:
		b := &BranchStep{}
		s.Branch = b
		return fieldSet{
			"condition": func(p pointer, v json.RawMessage) { b.Condition = d.str(p, v) },
			"yes":       func(p pointer, v json.RawMessage) { b.Yes = d.steps(p, v, depth+1) },
			"no":        func(p pointer, v json.RawMessage) { b.No = d.steps(p, v, depth+1) },
		}
	case TypeWebhook:
		b := &WebhookStep{}
		s.Webhook = b
		return fieldSet{
			"url":     func(p pointer, v json.RawMessage) { b.URL = d.str(p, v) },
			"body":    func(p pointer, v json.RawMessage) { b.Body = d.strMap(p, v) },
			"headers": func(p pointer, v json.RawMessage) { b.Headers = d.strMap(p, v) },
		}
	case TypeSendEmail:
		b := &EmailStep{}
		s.SendEmail = b
		return fieldSet{
			"to":      func(p pointer, v json.RawMessage) { b.To = d.str(p, v) },
			"subject": func(p pointer, v json.RawMessage) { b.Subject = d.str(p, v) },
			"text":    func(p pointer, v json.RawMessage) { b.Text = d.str(p, v) },
			"html":    func(p pointer, v json.RawMessage) { b.HTML = d.str(p, v) },
		}
	case TypeUpdateContact:
		b := &UpdateContactStep{}
		s.UpdateContact = b
		return fieldSet{
			"properties": func(p pointer, v json.RawMessage) { b.Properties = d.strMap(p, v) },
			"first_name": func(p pointer, v json.RawMessage) { b.FirstName = d.str(p, v) },
			"last_name":  func(p pointer, v json.RawMessage) { b.LastName = d.str(p, v) },
		}
	default: // TypeEmitEvent; step only calls this for known types
		b := &EmitEventStep{}
		s.EmitEvent = b
		return fieldSet{
			"name":       func(p pointer, v json.RawMessage) { b.Name = d.str(p, v) },
			"properties": func(p pointer, v json.RawMessage) { b.Properties = d.strMap(p, v) },
		}
	}
}

func (d *decoder) str(at pointer, raw json.RawMessage) string {
	var s string
	if kind := jsonKind(raw); kind != kindString {
		d.add(at, "must be a string, not %s", kind)
		return ""
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		d.add(at, "invalid string: %v", err)
	}
	return s
}

func (d *decoder) duration(at pointer, raw json.RawMessage) Duration {
	s := d.str(at, raw)
	if s == "" {
		return Duration{}
	}
	dur, err := ParseDuration(s)
	if err != nil {
		d.add(at, "%v", err)
	}
	return dur
}

func (d *decoder) array(at pointer, raw json.RawMessage) ([]json.RawMessage, bool) {
	if kind := jsonKind(raw); kind != kindArray {
		d.add(at, "must be an array, not %s", kind)
		return nil, false
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		d.add(at, "invalid array: %v", err)
		return nil, false
	}
	return items, true
}

func (d *decoder) strs(at pointer, raw json.RawMessage) []string {
	items, ok := d.array(at, raw)
	if !ok || len(items) == 0 {
		return nil
	}
	out := make([]string, len(items))
	for i, item := range items {
		out[i] = d.str(at.index(i), item)
	}
	return out
}

// strMap decodes an object whose values must all be strings; null values are errors here, since
// an entry cannot be "absent" while present.
func (d *decoder) strMap(at pointer, raw json.RawMessage) map[string]string {
	members, ok := d.members(at, raw)
	if !ok || len(members) == 0 {
		return nil
	}
	out := make(map[string]string, len(members))
	for _, m := range members {
		out[m.name] = d.str(at.key(m.name), m.value)
	}
	return out
}

// JSON kinds as jsonKind names them, worded to complete "must be a string, not …".
const (
	kindObject = "an object"
	kindArray  = "an array"
	kindString = "a string"
)

// jsonKind names the JSON type of raw from its first byte, or "" when raw is not JSON.
func jsonKind(raw json.RawMessage) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 || !json.Valid(raw) {
		return ""
	}
	switch raw[0] {
	case '{':
		return kindObject
	case '[':
		return kindArray
	case '"':
		return kindString
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// syntaxDetail explains why raw is not valid JSON, with the byte offset when there is one.
func syntaxDetail(raw json.RawMessage) string {
	var v any
	err := json.Unmarshal(raw, &v)
	var syn *json.SyntaxError
	switch {
	case err == nil:
		return "unexpected structure"
	case errors.As(err, &syn):
		return fmt.Sprintf("%v (at byte %d)", syn, syn.Offset)
	default:
		return err.Error()
	}
}

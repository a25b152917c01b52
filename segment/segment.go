// Package segment is the segment definition model: a named match of
// conditions on what contacts did (performed, goals, recency) and who they
// are (properties), nested with all/any/not, and its validation with a
// JSON pointer per problem. It is pure; the store compiles a Match to SQL.
package segment

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/signalbox/signalbox/definition"
)

// Limits of a definition.
const (
	// MaxDepth bounds the nesting of all/any/not groups.
	MaxDepth = 5
	// MaxConditions bounds the conditions of one segment, groups included.
	MaxConditions = 50
	// MaxNameLength bounds a segment's name.
	MaxNameLength = 200
)

// Segment is a saved definition.
type Segment struct {
	Name  string `json:"name"`
	Match Node   `json:"match"`
}

// Node is a group (All, Any or Not) or one condition.
type Node struct {
	All []Node `json:"all,omitempty"`
	Any []Node `json:"any,omitempty"`
	Not *Node  `json:"not,omitempty"`

	// Performed: has (or has not) done Event, Count times, Within a window.
	Event     string      `json:"event,omitempty"`
	Performed *bool       `json:"performed,omitempty"`
	Count     *Comparison `json:"count,omitempty"`
	Within    *Window     `json:"within,omitempty"`
	Where     *Where      `json:"where,omitempty"`

	Goal      *Goal    `json:"goal,omitempty"`
	LastEvent *Recency `json:"last_event,omitempty"`

	Property string          `json:"property,omitempty"`
	Op       string          `json:"op,omitempty"`
	Value    json.RawMessage `json:"value,omitempty"`
}

// Kind names what a node is.
func (n *Node) Kind() string {
	switch {
	case n.All != nil:
		return "all"
	case n.Any != nil:
		return "any"
	case n.Not != nil:
		return "not"
	case n.Goal != nil:
		return "goal"
	case n.LastEvent != nil:
		return "last_event"
	case n.Property != "":
		return "property"
	default:
		return "performed"
	}
}

// Comparison is an operator and a number.
type Comparison struct {
	Op    string  `json:"op"`
	Value float64 `json:"value"`
}

// Window is when events count: the last Duration, or [Since, Until).
type Window struct {
	Duration     time.Duration
	Text         string
	Since, Until *time.Time
}

// Bounds returns the window's start and end (nil end: now).
func (w *Window) Bounds(now time.Time) (time.Time, *time.Time) {
	if w.Duration > 0 {
		return now.Add(-w.Duration), nil
	}
	since := time.Time{}
	if w.Since != nil {
		since = *w.Since
	}
	return since, w.Until
}

// MarshalJSON writes "30d" or {"since","until"}.
func (w Window) MarshalJSON() ([]byte, error) {
	if w.Duration > 0 {
		return json.Marshal(w.Text)
	}
	return json.Marshal(struct {
		Since *time.Time `json:"since,omitempty"`
		Until *time.Time `json:"until,omitempty"`
	}{w.Since, w.Until})
}

// Goal is an aggregate of a goal type's values compared to a number.
type Goal struct {
	Type      string  `json:"type"`
	Aggregate string  `json:"aggregate"`
	Op        string  `json:"op"`
	Value     float64 `json:"value"`
	Within    *Window `json:"within,omitempty"`
}

// Recency is when a contact's last event (of Event, or of any name) was.
type Recency struct {
	Event     string        `json:"event,omitempty"`
	Within    time.Duration `json:"-"`
	OlderThan time.Duration `json:"-"`
	// text is the duration as written.
	text string
}

// MarshalJSON writes the durations as "90d".
func (r Recency) MarshalJSON() ([]byte, error) {
	out := map[string]string{}
	if r.Event != "" {
		out["event"] = r.Event
	}
	if r.Within > 0 {
		out["within"] = r.text
	}
	if r.OlderThan > 0 {
		out["older_than"] = r.text
	}
	return json.Marshal(out)
}

// Where is a filter on event.properties: comparisons joined by and/or/not,
// written in CEL (event.properties.plan == "pro" && event.properties.total > 10)
// and kept as a tree the store turns into SQL.
type Where struct {
	Source string
	Expr   *Expr
}

// MarshalJSON writes the source.
func (w Where) MarshalJSON() ([]byte, error) { return json.Marshal(w.Source) }

// Expr is a node of a where filter: And, Or, Not, or a comparison of the
// property at Path with Value (Op one of == != < <= > >= in, or "has").
type Expr struct {
	And, Or []*Expr
	Not     *Expr
	Path    []string
	Op      string
	Value   any
}

// WhereParser turns a where source into an Expr; package conditions
// provides it, so that this package stays free of CEL.
type WhereParser func(src string) (*Expr, error)

// Comparison and property operators.
var (
	countOps    = []string{">=", ">", "=", "==", "<=", "<", "!="}
	aggregates  = []string{"sum", "count", "avg", "min", "max"}
	goalTypes   = []string{"purchase", "subscription", "lead", "signup", "booking", "trial", "other", "any"}
	propertyOps = []string{"eq", "neq", "in", "exists", "gt", "gte", "lt", "lte", "contains"}
)

// Parse decodes and validates a segment document. Problems carry a JSON
// pointer each; a nil where parser refuses where filters.
func Parse(body []byte, where WhereParser) (*Segment, []definition.Problem) {
	var raw map[string]json.RawMessage
	if err := strictObject(body, &raw); err != nil {
		return nil, []definition.Problem{{Pointer: "", Detail: "the body must be a JSON object"}}
	}
	v := &validator{where: where}
	var s Segment
	for k := range raw {
		if k != "name" && k != "match" {
			v.add("/"+k, "unknown field %q; a segment has name and match", k)
		}
	}
	if err := json.Unmarshal(raw["name"], &s.Name); raw["name"] == nil || err != nil || strings.TrimSpace(s.Name) == "" {
		v.add("/name", "is required and must be a non-empty string")
	} else if len([]rune(s.Name)) > MaxNameLength {
		v.add("/name", "is longer than %d characters", MaxNameLength)
	}
	if raw["match"] == nil {
		v.add("/match", "is required: {\"all\": [conditions]} or {\"any\": [conditions]}")
	} else {
		s.Match = v.match(raw["match"], "/match")
	}
	if len(v.list) > 0 {
		return nil, v.list
	}
	return &s, nil
}

// ParseMatch validates a match alone (a preview's body member).
func ParseMatch(body json.RawMessage, where WhereParser) (Node, []definition.Problem) {
	v := &validator{where: where}
	n := v.match(body, "/match")
	return n, v.list
}

type validator struct {
	list  []definition.Problem
	where WhereParser
	count int
}

func (v *validator) add(p, format string, args ...any) {
	v.list = append(v.list, definition.Problem{Pointer: p, Detail: fmt.Sprintf(format, args...)})
}

// match is the top level: a group with all or any.
func (v *validator) match(raw json.RawMessage, p string) Node {
	var obj map[string]json.RawMessage
	if strictObject(raw, &obj) != nil || (obj["all"] == nil && obj["any"] == nil) {
		v.add(p, "must be an object with all or any: {\"all\": [conditions]}")
		return Node{}
	}
	return v.node(raw, p, 1)
}

func (v *validator) node(raw json.RawMessage, p string, depth int) Node {
	var n Node
	var obj map[string]json.RawMessage
	if strictObject(raw, &obj) != nil {
		v.add(p, "must be an object")
		return n
	}
	v.count++
	if v.count == MaxConditions+1 {
		v.add(p, "the segment has more than %d conditions", MaxConditions)
	}
	group := func(key string) []Node {
		if depth > MaxDepth {
			v.add(p, "groups are nested more than %d levels deep", MaxDepth)
			return []Node{}
		}
		var items []json.RawMessage
		if err := json.Unmarshal(obj[key], &items); err != nil || len(items) == 0 {
			v.add(p+"/"+key, "must be a non-empty array of conditions")
			return []Node{}
		}
		out := make([]Node, len(items))
		for i, it := range items {
			out[i] = v.node(it, p+"/"+key+"/"+strconv.Itoa(i), depth+1)
		}
		return out
	}
	only := func(kind string, allowed ...string) {
		for k := range obj {
			if !slices.Contains(allowed, k) {
				v.add(p+"/"+escape(k), "unknown field %q in a %s condition", k, kind)
			}
		}
	}
	switch {
	case obj["all"] != nil:
		only("group", "all")
		n.All = group("all")
	case obj["any"] != nil:
		only("group", "any")
		n.Any = group("any")
	case obj["not"] != nil:
		only("group", "not")
		if depth > MaxDepth {
			v.add(p, "groups are nested more than %d levels deep", MaxDepth)
			break
		}
		inner := v.node(obj["not"], p+"/not", depth+1)
		n.Not = &inner
	case obj["goal"] != nil:
		only("goal", "goal")
		n.Goal = v.goal(obj["goal"], p+"/goal")
	case obj["last_event"] != nil:
		only("last_event", "last_event")
		n.LastEvent = v.recency(obj["last_event"], p+"/last_event")
	case obj["property"] != nil:
		only("property", "property", "op", "value")
		v.property(obj, p, &n)
	case obj["event"] != nil:
		only("performed", "event", "performed", "count", "within", "where")
		v.performed(obj, p, &n)
	default:
		v.add(p, "is not a condition: use all, any, not, event (performed), goal, last_event or property")
	}
	return n
}

func (v *validator) eventName(raw json.RawMessage, p string, required bool) string {
	var name string
	if raw == nil {
		if required {
			v.add(p, "is required")
		}
		return ""
	}
	if err := json.Unmarshal(raw, &name); err != nil {
		v.add(p, "must be a string")
		return ""
	}
	if err := definition.CheckEventName(name); err != nil {
		v.add(p, "%v", err)
	}
	return name
}

func (v *validator) performed(obj map[string]json.RawMessage, p string, n *Node) {
	n.Event = v.eventName(obj["event"], p+"/event", true)
	performed := true
	if raw := obj["performed"]; raw != nil {
		if err := json.Unmarshal(raw, &performed); err != nil {
			v.add(p+"/performed", "must be true or false")
		}
	}
	n.Performed = &performed
	if raw := obj["count"]; raw != nil {
		c := v.comparison(raw, p+"/count", countOps)
		if c != nil && (c.Value < 0 || c.Value != math.Trunc(c.Value)) {
			v.add(p+"/count/value", "must be a whole number, 0 or more")
		}
		if c != nil && !performed {
			v.add(p+"/count", "performed: false cannot take a count; use performed: true with count {\"op\": \"<\", ...}")
		}
		n.Count = c
	}
	if raw := obj["within"]; raw != nil {
		n.Within = v.window(raw, p+"/within")
	}
	if raw := obj["where"]; raw != nil {
		var src string
		if err := json.Unmarshal(raw, &src); err != nil || strings.TrimSpace(src) == "" {
			v.add(p+"/where", "must be a CEL expression over event.properties")
			return
		}
		if v.where == nil {
			v.add(p+"/where", "where filters are not available here")
			return
		}
		e, err := v.where(src)
		if err != nil {
			v.add(p+"/where", "%v", err)
			return
		}
		n.Where = &Where{Source: src, Expr: e}
	}
}

func (v *validator) comparison(raw json.RawMessage, p string, ops []string) *Comparison {
	var c struct {
		Op    *string  `json:"op"`
		Value *float64 `json:"value"`
	}
	if strictObject(raw, &c) != nil {
		v.add(p, "must be an object {\"op\": \">=\", \"value\": 3}")
		return nil
	}
	ok := true
	if c.Op == nil || !slices.Contains(ops, *c.Op) {
		v.add(p+"/op", "must be one of %s", strings.Join(ops, " "))
		ok = false
	}
	if c.Value == nil {
		v.add(p+"/value", "is required and must be a number")
		ok = false
	}
	if !ok {
		return nil
	}
	return &Comparison{Op: *c.Op, Value: *c.Value}
}

func (v *validator) window(raw json.RawMessage, p string) *Window {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		d := v.duration(s, p)
		if d <= 0 {
			return nil
		}
		return &Window{Duration: d, Text: s}
	}
	var w struct {
		Since *time.Time `json:"since"`
		Until *time.Time `json:"until"`
	}
	if err := strictObject(raw, &w); err != nil {
		v.add(p, "must be a duration such as \"30d\" or {\"since\": RFC 3339, \"until\": RFC 3339}")
		return nil
	}
	if w.Since == nil && w.Until == nil {
		v.add(p, "needs since, until or both")
		return nil
	}
	if w.Since != nil && w.Until != nil && !w.Until.After(*w.Since) {
		v.add(p+"/until", "must be after since")
		return nil
	}
	return &Window{Since: w.Since, Until: w.Until}
}

func (v *validator) duration(s, p string) time.Duration {
	d, err := definition.ParseDuration(s)
	if err != nil || d.Std() <= 0 {
		v.add(p, "must be a positive duration such as \"30d\", \"12h\" or \"2w\"")
		return 0
	}
	return d.Std()
}

func (v *validator) goal(raw json.RawMessage, p string) *Goal {
	var obj map[string]json.RawMessage
	if strictObject(raw, &obj) != nil {
		v.add(p, "must be an object {\"type\", \"aggregate\", \"op\", \"value\", \"within\"}")
		return nil
	}
	g := &Goal{}
	for k := range obj {
		if !slices.Contains([]string{"type", "aggregate", "op", "value", "within"}, k) {
			v.add(p+"/"+escape(k), "unknown field %q in a goal condition", k)
		}
	}
	if json.Unmarshal(obj["type"], &g.Type) != nil || !slices.Contains(goalTypes, g.Type) {
		v.add(p+"/type", "must be one of %s", strings.Join(goalTypes, " "))
	}
	if json.Unmarshal(obj["aggregate"], &g.Aggregate) != nil || !slices.Contains(aggregates, g.Aggregate) {
		v.add(p+"/aggregate", "must be one of %s", strings.Join(aggregates, " "))
	}
	if json.Unmarshal(obj["op"], &g.Op) != nil || !slices.Contains(countOps, g.Op) {
		v.add(p+"/op", "must be one of %s", strings.Join(countOps, " "))
	}
	var val *float64
	if json.Unmarshal(obj["value"], &val) != nil || val == nil {
		v.add(p+"/value", "is required and must be a number")
	} else {
		g.Value = *val
	}
	if raw := obj["within"]; raw != nil {
		g.Within = v.window(raw, p+"/within")
	}
	return g
}

func (v *validator) recency(raw json.RawMessage, p string) *Recency {
	var obj map[string]json.RawMessage
	if strictObject(raw, &obj) != nil {
		v.add(p, "must be an object {\"event\", \"within\" | \"older_than\"}")
		return nil
	}
	r := &Recency{}
	for k := range obj {
		if !slices.Contains([]string{"event", "within", "older_than"}, k) {
			v.add(p+"/"+escape(k), "unknown field %q in a last_event condition", k)
		}
	}
	r.Event = v.eventName(obj["event"], p+"/event", false)
	var s string
	switch {
	case obj["within"] != nil && obj["older_than"] != nil:
		v.add(p, "takes within or older_than, not both")
	case obj["within"] != nil:
		if json.Unmarshal(obj["within"], &s) != nil {
			v.add(p+"/within", "must be a duration such as \"90d\"")
		} else {
			r.Within, r.text = v.duration(s, p+"/within"), s
		}
	case obj["older_than"] != nil:
		if json.Unmarshal(obj["older_than"], &s) != nil {
			v.add(p+"/older_than", "must be a duration such as \"90d\"")
		} else {
			r.OlderThan, r.text = v.duration(s, p+"/older_than"), s
		}
	default:
		v.add(p, "needs within or older_than")
	}
	return r
}

func (v *validator) property(obj map[string]json.RawMessage, p string, n *Node) {
	if json.Unmarshal(obj["property"], &n.Property) != nil || n.Property == "" || len(n.Property) > 200 {
		v.add(p+"/property", "must be a property name (a non-empty string)")
	}
	if json.Unmarshal(obj["op"], &n.Op) != nil || !slices.Contains(propertyOps, n.Op) {
		v.add(p+"/op", "must be one of %s", strings.Join(propertyOps, " "))
		return
	}
	val := obj["value"]
	switch n.Op {
	case "exists":
		if val != nil {
			var b bool
			if json.Unmarshal(val, &b) != nil {
				v.add(p+"/value", "exists takes true, false or no value")
			}
		}
	case "in":
		var list []json.RawMessage
		if json.Unmarshal(val, &list) != nil || len(list) == 0 {
			v.add(p+"/value", "in takes a non-empty array of values")
		}
	case "gt", "gte", "lt", "lte":
		var f float64
		var s string
		if json.Unmarshal(val, &f) != nil && json.Unmarshal(val, &s) != nil {
			v.add(p+"/value", "%s takes a number or a string", n.Op)
		}
	case "contains":
		var s string
		if json.Unmarshal(val, &s) != nil {
			v.add(p+"/value", "contains takes a string")
		}
	default:
		if val == nil {
			v.add(p+"/value", "is required")
		}
	}
	n.Value = val
}

// strictObject decodes a JSON object, refusing anything else.
func strictObject(raw []byte, dst any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return fmt.Errorf("not an object")
	}
	return json.Unmarshal(raw, dst)
}

func escape(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}

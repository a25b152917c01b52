package conditions

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// adapter turns the JSON-like Go values of Vars into CEL values. It differs from CEL's default
// in three ways that matter here: maps iterate in sorted key order (Go's map order is random,
// and event.properties.map(k, k) must give the same list in a workflow and on its replay),
// json.Number becomes a number, and the treatment applies at every depth.
type adapter struct {
	base types.Adapter
}

// NativeToValue implements types.Adapter.
func (a adapter) NativeToValue(value any) ref.Val {
	switch v := value.(type) {
	case map[string]any:
		return sortedMap{Mapper: types.NewStringInterfaceMap(a, v), native: v, adapter: a}
	case []any:
		return types.NewDynamicList(a, v)
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return types.Int(i)
		}
		if f, err := v.Float64(); err == nil {
			return types.Double(f)
		}
		return types.String(v)
	}
	return a.base.NativeToValue(value)
}

// sortedMap is a CEL map over a Go map whose iteration (comprehensions, and so map(), filter(),
// exists() …) visits keys in sorted order. Everything else is CEL's own map.
type sortedMap struct {
	traits.Mapper
	native  map[string]any
	adapter adapter
}

// Iterator implements traits.Iterable over the sorted keys.
func (m sortedMap) Iterator() traits.Iterator {
	keys := make([]string, 0, len(m.native))
	for k := range m.native {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return types.NewStringList(m.adapter, keys).Iterator()
}

// eventValue prepares an event map for binding: occurred_at becomes a timestamp when it is an
// RFC 3339 string, so that now - event.occurred_at works whether the caller decoded the event
// from JSON (a workflow) or built it with a time.Time (the record path).
func eventValue(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	s, ok := m["occurred_at"].(string)
	if !ok {
		return m
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return m
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	out["occurred_at"] = t
	return out
}

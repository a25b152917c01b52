package catalog

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// fastSchema is a pre-check for the shape most event schemas have: an
// object whose properties each have a type and maybe an enum of strings,
// bounds or lengths, some of them required, extra properties allowed or
// not. It scans the raw JSON once without building values and can only
// answer "valid"; anything it is unsure of (an escape in a string, a
// number near float precision, a failure) goes to the full validator,
// which decides and explains. TestFastAgreesWithValidator holds it to the
// validator.
type fastSchema struct {
	props      map[string]int
	specs      []propSpec
	required   []int
	additional bool
}

// JSON types as the pre-check tells them apart.
const (
	tString = 1 << iota
	tNumber
	tInteger
	tBool
	tNull
	tObject
	tArray
)

type propSpec struct {
	types      int
	enum       []string
	min, max   *float64
	xmin, xmax *float64
	minLen     int
	maxLen     int
}

// annotations are keywords that never make an instance invalid.
var annotations = []string{"title", "description", "$comment", "examples", "default", "deprecated", "readOnly",
	"writeOnly", "format"}

// newFastSchema builds the pre-check for a schema of the common shape, or
// returns nil.
func newFastSchema(doc any) *fastSchema {
	root, ok := doc.(map[string]any)
	if !ok {
		return nil
	}
	f := &fastSchema{props: map[string]int{}, additional: true}
	for k, v := range root {
		switch k {
		case "$schema":
			if v != "https://json-schema.org/draft/2020-12/schema" {
				return nil
			}
		case "type":
			if v != "object" {
				return nil
			}
		case "properties":
			props, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			for name, ps := range props {
				spec, ok := newPropSpec(ps)
				if !ok {
					return nil
				}
				f.props[name] = len(f.specs)
				f.specs = append(f.specs, spec)
			}
		case "required":
			list, ok := v.([]any)
			if !ok {
				return nil
			}
			for _, r := range list {
				if _, ok := r.(string); !ok {
					return nil
				}
			}
		case "additionalProperties":
			b, ok := v.(bool)
			if !ok {
				return nil
			}
			f.additional = b
		default:
			if !slices.Contains(annotations, k) {
				return nil
			}
		}
	}
	if root["type"] != "object" {
		return nil
	}
	if list, ok := root["required"].([]any); ok {
		for _, r := range list {
			idx, known := f.props[r.(string)]
			if !known {
				return nil
			}
			if !slices.Contains(f.required, idx) {
				f.required = append(f.required, idx)
			}
		}
	}
	if len(f.specs) > 64 {
		return nil
	}
	return f
}

func newPropSpec(v any) (propSpec, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return propSpec{}, false
	}
	spec := propSpec{minLen: -1, maxLen: -1}
	for k, v := range m {
		switch k {
		case "type":
			switch t := v.(type) {
			case string:
				bit := typeBit(t)
				if bit == 0 {
					return propSpec{}, false
				}
				spec.types = bit
			case []any:
				for _, e := range t {
					s, ok := e.(string)
					if !ok || typeBit(s) == 0 {
						return propSpec{}, false
					}
					spec.types |= typeBit(s)
				}
			default:
				return propSpec{}, false
			}
		case "enum":
			list, ok := v.([]any)
			if !ok {
				return propSpec{}, false
			}
			for _, e := range list {
				s, ok := e.(string)
				if !ok {
					return propSpec{}, false
				}
				spec.enum = append(spec.enum, s)
			}
			if spec.enum == nil {
				return propSpec{}, false
			}
		case "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum":
			n, ok := v.(json.Number)
			if !ok {
				return propSpec{}, false
			}
			x, err := n.Float64()
			if err != nil || !exact(x) {
				return propSpec{}, false
			}
			switch k {
			case "minimum":
				spec.min = &x
			case "maximum":
				spec.max = &x
			case "exclusiveMinimum":
				spec.xmin = &x
			case "exclusiveMaximum":
				spec.xmax = &x
			}
		case "minLength", "maxLength":
			n, ok := v.(json.Number)
			if !ok {
				return propSpec{}, false
			}
			x, err := n.Int64()
			if err != nil || x < 0 || x > 1<<20 {
				return propSpec{}, false
			}
			if k == "minLength" {
				spec.minLen = int(x)
			} else {
				spec.maxLen = int(x)
			}
		default:
			if !slices.Contains(annotations, k) {
				return propSpec{}, false
			}
		}
	}
	if spec.types == 0 {
		return propSpec{}, false
	}
	return spec, true
}

// exact says a bound is an integer small enough that float comparisons
// with it are exact for the numbers the pre-check accepts.
func exact(x float64) bool { return x == math.Trunc(x) && math.Abs(x) < 1<<53 }

func typeBit(t string) int {
	switch t {
	case "string":
		return tString
	case "number":
		return tNumber | tInteger
	case "integer":
		return tInteger
	case "boolean":
		return tBool
	case "null":
		return tNull
	case "object":
		return tObject
	case "array":
		return tArray
	}
	return 0
}

// valid reports that properties certainly conform; false means "ask the
// validator", not "invalid".
func (f *fastSchema) valid(data []byte) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	var seen uint64
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return f.requiredSeen(0) && skipSpace(data, i+1) == len(data)
	}
	for {
		key, next, ok := plainString(data, i)
		if !ok {
			return false
		}
		i = skipSpace(data, next)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipSpace(data, i+1)
		idx, known := f.props[string(key)]
		if !known && !f.additional {
			return false
		}
		end, ok := skipValue(data, i)
		if !ok {
			return false
		}
		if known {
			if seen&(1<<idx) != 0 { // a repeated key: let the validator judge
				return false
			}
			seen |= 1 << idx
			if !f.specs[idx].accepts(data[i:end]) {
				return false
			}
		}
		i = skipSpace(data, end)
		if i >= len(data) {
			return false
		}
		if data[i] == '}' {
			return f.requiredSeen(seen) && skipSpace(data, i+1) == len(data)
		}
		if data[i] != ',' {
			return false
		}
		i = skipSpace(data, i+1)
	}
}

func (f *fastSchema) requiredSeen(seen uint64) bool {
	for _, r := range f.required {
		if seen&(1<<r) == 0 {
			return false
		}
	}
	return true
}

// accepts checks one raw value against a property's spec.
func (p *propSpec) accepts(v []byte) bool {
	switch v[0] {
	case '"':
		if p.types&tString == 0 {
			return false
		}
		s, end, ok := plainString(v, 0)
		if !ok || end != len(v) {
			return false
		}
		if p.enum != nil && !slices.Contains(p.enum, string(s)) {
			return false
		}
		if p.minLen >= 0 || p.maxLen >= 0 {
			n := utf8.RuneCount(s)
			if (p.minLen >= 0 && n < p.minLen) || (p.maxLen >= 0 && n > p.maxLen) {
				return false
			}
		}
		return true
	case 't', 'f':
		return p.types&tBool != 0 && p.enum == nil
	case 'n':
		return p.types&tNull != 0 && p.enum == nil
	case '{':
		return p.types&tObject != 0 && p.enum == nil
	case '[':
		return p.types&tArray != 0 && p.enum == nil
	}
	if p.types&(tNumber|tInteger) == 0 || p.enum != nil || len(v) > 15 {
		return false
	}
	x, err := strconv.ParseFloat(unsafeString(v), 64)
	if err != nil {
		return false
	}
	if p.types&tNumber == 0 && x != math.Trunc(x) {
		return false
	}
	return (p.min == nil || x >= *p.min) && (p.max == nil || x <= *p.max) &&
		(p.xmin == nil || x > *p.xmin) && (p.xmax == nil || x < *p.xmax)
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// plainString reads a string without escapes starting at data[i] and
// returns it and the index after its closing quote.
func plainString(data []byte, i int) ([]byte, int, bool) {
	if i >= len(data) || data[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			return data[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// skipValue returns the index just after the JSON value starting at i.
func skipValue(data []byte, i int) (int, bool) {
	if i >= len(data) {
		return 0, false
	}
	switch data[i] {
	case '"':
		for j := i + 1; j < len(data); j++ {
			switch data[j] {
			case '\\':
				j++
			case '"':
				return j + 1, true
			}
		}
		return 0, false
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				end, ok := skipValue(data, j)
				if !ok {
					return 0, false
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	}
	// A number (or true, false, null): the properties were checked to be
	// JSON before, so its end is the first byte that cannot be part of it.
	j := i
	for j < len(data) && (data[j] == '-' || data[j] == '+' || data[j] == '.' || data[j] == 'e' || data[j] == 'E' ||
		(data[j] >= '0' && data[j] <= '9') || (data[j] >= 'a' && data[j] <= 'z')) {
		j++
	}
	return j, j > i
}

// unsafeString views b as a string without copying; the string must not
// outlive b or be kept.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

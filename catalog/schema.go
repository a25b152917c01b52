package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/signalbox/signalbox/store"
)

// Limits on a schema, checked when it is saved.
const (
	// MaxSchemaBytes caps a schema as JSON.
	MaxSchemaBytes = 64 << 10
	// MaxSchemaDepth caps its nesting of objects and arrays.
	MaxSchemaDepth = 32
)

// schemaURL is where a schema is filed for the compiler; it is never
// fetched from anywhere.
const schemaURL = "urn:signalbox:event-schema"

// Problem is what is wrong with a schema, at a pointer into the request
// ("/schema/properties/amount/type").
type Problem struct {
	Pointer string
	Detail  string
}

// Schema is a compiled JSON Schema (draft 2020-12 unless it says
// otherwise) for an event's properties. It is immutable and safe for
// concurrent use.
type Schema struct {
	compiled *jsonschema.Schema
	// fast answers "valid" without the validator for the common shapes;
	// nil when the schema has another shape.
	fast *fastSchema
}

var printer = message.NewPrinter(language.English)

// refuseLoader fetches nothing: every schema must be self-contained.
type refuseLoader struct{}

func (refuseLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("%s: remote and relative references are refused; nothing is fetched", url)
}

// CompileSchema checks and compiles a schema as it is saved. The problems
// point into the request, under "/schema".
func CompileSchema(raw json.RawMessage) (*Schema, []Problem) {
	if len(raw) > MaxSchemaBytes {
		return nil, []Problem{{"/schema", fmt.Sprintf("the schema is %d bytes; at most %d", len(raw), MaxSchemaBytes)}}
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, []Problem{{"/schema", "the schema is not valid JSON"}}
	}
	switch doc.(type) {
	case map[string]any, bool:
	default:
		return nil, []Problem{{"/schema", "a schema must be a JSON object (or true/false)"}}
	}
	var problems []Problem
	walkSchema(doc, "/schema", 1, &problems)
	if len(problems) > 0 {
		return nil, problems
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(refuseLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, []Problem{{"/schema", err.Error()}}
	}
	compiled, err := c.Compile(schemaURL)
	if err != nil {
		return nil, compileProblems(err)
	}
	return &Schema{compiled: compiled, fast: newFastSchema(doc)}, nil
}

// walkSchema bounds the depth and refuses references that would have to be
// fetched, naming the member at fault.
func walkSchema(v any, at string, depth int, problems *[]Problem) {
	if depth > MaxSchemaDepth {
		*problems = append(*problems, Problem{at, fmt.Sprintf("the schema nests deeper than %d levels", MaxSchemaDepth)})
		return
	}
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range v {
				if !yield(k) {
					return
				}
			}
		}) {
			ptr := at + "/" + escape(k)
			if k == "$ref" || k == "$dynamicRef" {
				if ref, ok := v[k].(string); ok && !strings.HasPrefix(ref, "#") {
					*problems = append(*problems, Problem{ptr,
						fmt.Sprintf("%s %q is remote or relative; only references inside the schema (\"#/$defs/...\") are allowed, nothing is fetched", k, ref)})
					continue
				}
			}
			walkSchema(v[k], ptr, depth+1, problems)
			if len(*problems) >= 20 {
				return
			}
		}
	case []any:
		for i, e := range v {
			walkSchema(e, fmt.Sprintf("%s/%d", at, i), depth+1, problems)
		}
	}
}

// compileProblems turns the compiler's error into problems pointing into
// the schema: a metaschema violation names each place at fault.
func compileProblems(err error) []Problem {
	var sve *jsonschema.SchemaValidationError
	var ve *jsonschema.ValidationError
	if errors.As(err, &sve) && errors.As(sve.Err, &ve) {
		var out []Problem
		for _, leaf := range leaves(ve) {
			out = append(out, Problem{"/schema" + pointer(leaf.InstanceLocation), leaf.ErrorKind.LocalizedString(printer)})
		}
		if len(out) > 0 {
			return out
		}
	}
	var lue *jsonschema.LoadURLError
	if errors.As(err, &lue) {
		return []Problem{{"/schema/$schema", fmt.Sprintf("%s cannot be loaded: nothing is fetched", lue.URL)}}
	}
	return []Problem{{"/schema", "the schema does not compile: " + strings.TrimPrefix(err.Error(), "jsonschema: ")}}
}

// leaves are the errors at the bottom of a validation error's tree, the
// ones that say what failed.
func leaves(e *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(e.Causes) == 0 {
		return []*jsonschema.ValidationError{e}
	}
	var out []*jsonschema.ValidationError
	for _, c := range e.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

// Validate checks an event's properties against the schema and returns
// one violation per failure (none when they conform). Pointers are into
// the event ("/properties/amount").
func (s *Schema) Validate(properties json.RawMessage) []store.SchemaViolation {
	if len(properties) == 0 {
		properties = json.RawMessage(`{}`)
	}
	if s.fast != nil && s.fast.valid(properties) {
		return nil
	}
	return s.validateSlow(properties)
}

// validateSlow runs the full validator; every error comes from it.
func (s *Schema) validateSlow(properties json.RawMessage) []store.SchemaViolation {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(properties))
	if err != nil {
		return []store.SchemaViolation{{Field: "properties", Pointer: "/properties", Keyword: "type", Detail: "properties are not valid JSON"}}
	}
	err = s.compiled.Validate(doc)
	var ve *jsonschema.ValidationError
	if err == nil || !errors.As(err, &ve) {
		return nil
	}
	var out []store.SchemaViolation
	for _, leaf := range leaves(ve) {
		loc := append([]string{"properties"}, leaf.InstanceLocation...)
		keyword := "schema"
		if kp := leaf.ErrorKind.KeywordPath(); len(kp) > 0 {
			keyword = kp[0]
		}
		detail := leaf.ErrorKind.LocalizedString(printer)
		if req, ok := leaf.ErrorKind.(*kind.Required); ok {
			// One violation per missing property, pointing where it belongs.
			for _, m := range req.Missing {
				at := append(slices.Clone(loc), m)
				out = append(out, store.SchemaViolation{Field: strings.Join(at, "."), Pointer: pointer(at),
					Keyword: keyword, Detail: fmt.Sprintf("missing required property %q", m)})
			}
			continue
		}
		out = append(out, store.SchemaViolation{Field: strings.Join(loc, "."), Pointer: pointer(loc), Keyword: keyword,
			Detail: detail})
	}
	return out
}

// pointer makes an RFC 6901 pointer of a path.
func pointer(path []string) string {
	var b strings.Builder
	for _, p := range path {
		b.WriteByte('/')
		b.WriteString(escape(p))
	}
	return b.String()
}

func escape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

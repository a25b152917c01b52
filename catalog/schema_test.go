package catalog

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCompileSchemaProblemsPointIntoTheSchema(t *testing.T) {
	t.Parallel()
	cases := []struct {
		schema  string
		pointer string
		detail  string
	}{
		{`{"type":"object","properties":{"amount":{"type":"money"}}}`, "/schema/properties/amount/type", ""},
		{`{"type":"object","properties":{"amount":{"minimum":"ten"}}}`, "/schema/properties/amount/minimum", ""},
		{`{"$ref":"https://example.com/s.json"}`, "/schema/$ref", "remote or relative"},
		{`{"properties":{"a":{"$ref":"other.json#/x"}}}`, "/schema/properties/a/$ref", "nothing is fetched"},
		{`{"$schema":"https://example.com/meta"}`, "/schema/$schema", "nothing is fetched"},
		{`[1,2]`, "/schema", "JSON object"},
		{`{"type":"object","properties":{"a":{"pattern":"("}}}`, "/schema/properties/a/pattern", ""},
	}
	for _, c := range cases {
		s, problems := CompileSchema(json.RawMessage(c.schema))
		require.Nil(t, s, c.schema)
		require.NotEmpty(t, problems, c.schema)
		require.Equal(t, c.pointer, problems[0].Pointer, "%s: %+v", c.schema, problems)
		require.Contains(t, problems[0].Detail, c.detail)
	}
	deep := strings.Repeat(`{"items":`, 40) + `{}` + strings.Repeat(`}`, 40)
	_, problems := CompileSchema(json.RawMessage(deep))
	require.NotEmpty(t, problems)
	require.Contains(t, problems[0].Detail, "deeper than 32")
	big := `{"description":"` + strings.Repeat("x", MaxSchemaBytes) + `"}`
	_, problems = CompileSchema(json.RawMessage(big))
	require.Equal(t, "/schema", problems[0].Pointer)

	// References inside the schema are fine.
	s, problems := CompileSchema(json.RawMessage(`{"$defs":{"m":{"type":"number"}},"properties":{"a":{"$ref":"#/$defs/m"}}}`))
	require.Empty(t, problems)
	require.NotEmpty(t, s.Validate(json.RawMessage(`{"a":"x"}`)))
}

func TestValidateNamesEachViolation(t *testing.T) {
	t.Parallel()
	s, problems := CompileSchema(json.RawMessage(`{"type":"object","required":["amount","currency"],
		"properties":{"amount":{"type":"number","minimum":0},"currency":{"type":"string","enum":["EUR","USD"]},
		"items":{"type":"array","items":{"type":"object","properties":{"sku":{"type":"string"}}}}}}`))
	require.Empty(t, problems)
	require.Nil(t, s.Validate(json.RawMessage(`{"amount":3,"currency":"EUR"}`)))
	got := s.Validate(json.RawMessage(`{"amount":"3","items":[{"sku":1}]}`))
	byPointer := map[string]string{}
	for _, v := range got {
		byPointer[v.Pointer] = v.Keyword
	}
	require.Equal(t, map[string]string{"/properties/amount": "type", "/properties/currency": "required",
		"/properties/items/0/sku": "type"}, byPointer, "%+v", got)
	for _, v := range got {
		require.NotEmpty(t, v.Detail)
		require.True(t, strings.HasPrefix(v.Field, "properties."))
	}
}

// TestFastAgreesWithValidator holds the pre-check to the validator: on
// random documents against schemas of the shape it handles, it may only
// say "valid" where the validator finds nothing.
func TestFastAgreesWithValidator(t *testing.T) {
	t.Parallel()
	schemas := []string{
		benchSchema(20),
		`{"type":"object","required":["a"],"additionalProperties":false,"properties":{"a":{"type":"integer","minimum":1,"maximum":5},"b":{"type":["string","null"],"minLength":2,"maxLength":4}}}`,
		`{"type":"object","properties":{"e":{"type":"string","enum":["x","y"]},"n":{"type":"number","exclusiveMinimum":0,"exclusiveMaximum":10},"o":{"type":"object"},"l":{"type":"array"},"t":{"type":"boolean"}}}`,
	}
	values := []string{`1`, `0`, `-1`, `5`, `6`, `1.5`, `10`, `1e2`, `1.0`, `-0`, `3.0000000000000001`, `"x"`, `"y"`, `"z"`,
		`"ab"`, `"abcde"`, `"é€"`, `"a\"b"`, `"\u0041B"`, `true`, `false`, `null`, `{}`, `{"k":[1,{"x":"}"}]}`, `[]`,
		`[1,"]"]`, `12345678901234567890`}
	keys := []string{"a", "b", "e", "n", "o", "l", "t", "p0", "p1", "p7", "p19", "zz", `a\u0062`}
	rng := rand.New(rand.NewPCG(1, 2))
	fastSaid := 0
	for _, src := range schemas {
		s, problems := CompileSchema(json.RawMessage(src))
		require.Empty(t, problems)
		require.NotNil(t, s.fast, "the pre-check should handle %s", src)
		for range 4000 {
			var parts []string
			for range rng.IntN(6) {
				parts = append(parts, fmt.Sprintf(`%q:%s`, keys[rng.IntN(len(keys))], values[rng.IntN(len(values))]))
			}
			doc := "{" + strings.Join(parts, ",") + "}"
			doc = strings.ReplaceAll(doc, `"a\\u0062"`, `"a\u0062"`)
			if !json.Valid([]byte(doc)) {
				continue
			}
			if s.fast.valid([]byte(doc)) {
				fastSaid++
				require.Empty(t, s.validateSlow(json.RawMessage(doc)), "pre-check accepted %s against %s", doc, src)
			}
		}
	}
	require.Greater(t, fastSaid, 500, "the pre-check should accept a good share of valid documents")
}

// benchSchema is a schema of n typed properties, half of them required,
// as the benchmark uses.
func benchSchema(n int) string {
	types := []string{`{"type":"string","maxLength":64}`, `{"type":"number","minimum":0}`, `{"type":"integer"}`,
		`{"type":"boolean"}`, `{"type":"string","enum":["a","b","c"]}`}
	var props, req []string
	for i := range n {
		props = append(props, fmt.Sprintf(`"p%d":%s`, i, types[i%len(types)]))
		if i%2 == 0 {
			req = append(req, fmt.Sprintf(`"p%d"`, i))
		}
	}
	return `{"type":"object","properties":{` + strings.Join(props, ",") + `},"required":[` + strings.Join(req, ",") + `]}`
}

func BenchmarkValidate(b *testing.B) {
	s, _ := CompileSchema(json.RawMessage(benchSchema(20)))
	doc := json.RawMessage(`{"p0":"hello","p1":12.5,"p2":7,"p3":true,"p4":"a","p5":"x","p6":1,"p7":2,"p8":false,"p9":"b",` +
		`"p10":"s","p11":3,"p12":4,"p13":true,"p14":"c","p15":"y","p16":5.5,"p17":6,"p18":false,"p19":"a"}`)
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if v := s.Validate(doc); v != nil {
				b.Fatal(v)
			}
		}
	})
	b.Run("validator", func(b *testing.B) {
		for b.Loop() {
			if v := s.validateSlow(doc); v != nil {
				b.Fatal(v)
			}
		}
	})
}

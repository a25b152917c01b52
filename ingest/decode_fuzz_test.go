package ingest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// FuzzDecodeEvent feeds arbitrary bodies to the ingest decoder. Whatever
// comes in, it must not panic, must refuse with a malformed error or field
// errors, and anything it accepts must be something PostgreSQL will store
// (no NUL characters, valid UTF-8, an object of bounded size and depth), so
// that bad input can never surface as a 500. Its seed corpus lives in
// testdata/fuzz/FuzzDecodeEvent; `make test` runs it briefly.
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range []string{
		`{"name":"purchase.completed","email":"a@example.com","properties":{"amount":50.5}}`,
		`{"name":"a","contact_id":"01900000-0000-7000-8000-000000000000","external_id":"x","goal_type":"purchase","goal_value":-1.5}`,
		`{"name":"a","email":"A@B.co","create_if_missing":true,"contact_name":"Ada","contact_properties":{"first_name":null,"plan":"pro"}}`,
		`{"name":"a","email":"a@b.co","occurred_at":"2026-01-01T00:00:00Z"}`,
		`{"name":"a","email":"a@b.co","properties":{"x":"\u0000"}}`,
		`{"name":"a","email":"a@b.co","properties":{"a":[[[[[[[[[[1]]]]]]]]]]}}`,
		`[]`, `null`, `{`, `"x"`, `{"name":1}`,
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		in, errs, err := DecodeEvent(data, now)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		for _, e := range errs {
			if e.Code == "" || e.Detail == "" {
				t.Fatalf("field error without code or detail: %+v", e)
			}
		}
		if len(errs) > 0 {
			return
		}
		if in.Name == "" || CheckEventName(in.Name) != "" {
			t.Fatalf("accepted bad name %q", in.Name)
		}
		if (in.ContactID == uuid.Nil) == (in.Email == "") {
			t.Fatalf("accepted event without exactly one contact reference: %+v", in)
		}
		if in.Email != "" && in.Email != strings.ToLower(in.Email) {
			t.Fatalf("email not lower-cased: %q", in.Email)
		}
		for _, s := range []string{in.Name, in.Email, in.ExternalID, in.ContactName, in.GoalType} {
			if strings.ContainsRune(s, 0) || !utf8.ValidString(s) {
				t.Fatalf("accepted text PostgreSQL refuses: %q", s)
			}
		}
		if len(in.Properties) > MaxPropertiesBytes {
			t.Fatalf("accepted %d bytes of properties", len(in.Properties))
		}
		var props any
		if err := json.Unmarshal(in.Properties, &props); err != nil {
			t.Fatalf("accepted properties that are not JSON: %v", err)
		}
		if _, ok := props.(map[string]any); !ok {
			t.Fatalf("accepted properties that are not an object: %s", in.Properties)
		}
		var numbers any
		dec := json.NewDecoder(strings.NewReader(string(in.Properties)))
		dec.UseNumber()
		if err := dec.Decode(&numbers); err != nil || !finite(numbers) {
			t.Fatalf("accepted properties with numbers jsonb may refuse: %s", in.Properties)
		}
		if d := depth(props); d > MaxDepth || hasNUL(props) {
			t.Fatalf("accepted properties %d deep or holding NUL: %s", d, in.Properties)
		}
		if in.OccurredAt.After(now.Add(MaxFuture)) {
			t.Fatalf("accepted occurred_at %v", in.OccurredAt)
		}
		if p := in.ContactPatch; p != nil {
			var set any = map[string]any{}
			if len(p.Set) > 0 {
				if err := json.Unmarshal(p.Set, &set); err != nil {
					t.Fatalf("contact patch is not JSON: %v", err)
				}
			}
			if hasNUL(set) || p.FirstName != nil && strings.ContainsRune(*p.FirstName, 0) ||
				p.LastName != nil && strings.ContainsRune(*p.LastName, 0) {
				t.Fatalf("accepted a contact patch holding NUL")
			}
		}
	})
}

func depth(v any) int {
	switch x := v.(type) {
	case map[string]any:
		d := 0
		for _, e := range x {
			d = max(d, depth(e))
		}
		return d + 1
	case []any:
		d := 0
		for _, e := range x {
			d = max(d, depth(e))
		}
		return d + 1
	}
	return 0
}

func hasNUL(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.ContainsRune(x, 0)
	case map[string]any:
		for k, e := range x {
			if strings.ContainsRune(k, 0) || hasNUL(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if hasNUL(e) {
				return true
			}
		}
	}
	return false
}

// finite reports whether every number in v fits a float64 and is short.
func finite(v any) bool {
	switch x := v.(type) {
	case json.Number:
		_, err := x.Float64()
		return err == nil && len(x) <= maxNumberLen
	case map[string]any:
		for _, e := range x {
			if !finite(e) {
				return false
			}
		}
	case []any:
		for _, e := range x {
			if !finite(e) {
				return false
			}
		}
	}
	return true
}

// FuzzDecodeBatch feeds arbitrary bodies to the batch decoder: it must
// refuse a body that is not a batch, and otherwise account for every item
// exactly once, as accepted or with its errors.
func FuzzDecodeBatch(f *testing.F) {
	for _, s := range []string{
		`{"events":[{"name":"a","email":"a@b.co"},{"name":"1"},"x",null,{}]}`,
		`{"events":[]}`, `{"events":{}}`, `{"evnts":[]}`, `[]`, `{"events":[` + strings.Repeat(`{"name":"a","email":"a@b.co"},`, 70) + `{}]}`,
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBatch(data, now)
		if err != nil {
			var fe FieldError
			if !errors.Is(err, ErrMalformed) && !errors.As(err, &fe) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if b.Size < 1 || b.Size > MaxBatchEvents || len(b.Events) != len(b.Index) {
			t.Fatalf("inconsistent batch: size %d, %d events, %d indexes", b.Size, len(b.Events), len(b.Index))
		}
		seen := map[int]bool{}
		for _, i := range b.Index {
			seen[i] = true
		}
		for _, e := range b.Errors {
			if e.Index < 0 || e.Index >= b.Size {
				t.Fatalf("error for item %d out of range", e.Index)
			}
			if seen[e.Index] {
				t.Fatalf("item %d both accepted and refused", e.Index)
			}
		}
		failed := map[int]bool{}
		for _, e := range b.Errors {
			failed[e.Index] = true
		}
		if len(seen)+len(failed) != b.Size {
			t.Fatalf("%d accepted + %d refused != %d items", len(seen), len(failed), b.Size)
		}
	})
}

package ingest

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"unicode/utf8"

	"github.com/signalbox/signalbox/store"
)

// ContactInput is a decoded contact body (POST or PATCH /v1/contacts).
type ContactInput struct {
	// Email is lower-cased; "" when absent.
	Email string
	Patch store.ContactPatch
}

// DecodeContact decodes {"email","first_name","last_name","properties"}.
// properties merge into the stored ones, a null member removing one; a null
// first_name or last_name clears it. requireEmail is set for creation.
func DecodeContact(data []byte, requireEmail bool) (ContactInput, []FieldError, error) {
	if !utf8.Valid(data) || !json.Valid(data) {
		return ContactInput{}, nil, fmt.Errorf("%w", ErrMalformed)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return ContactInput{}, []FieldError{{Code: CodeType, Detail: "a contact must be a JSON object"}}, nil
	}
	d := decoder{members: members}
	var in ContactInput
	for _, key := range slices.Sorted(maps.Keys(members)) {
		switch key {
		case "email", "first_name", "last_name", "properties":
		default:
			d.fail(key, CodeUnknownField, "unknown field")
		}
	}
	if v, ok := d.string("email"); ok {
		norm, detail := NormalizeEmail(v)
		if detail != "" {
			d.fail("email", CodeInvalid, detail)
		}
		in.Email = norm
		in.Patch.Email = &in.Email
	} else if requireEmail && !d.failed("email") {
		d.fail("email", CodeRequired, "email is required")
	}
	names := map[string]json.RawMessage{}
	for _, k := range []string{"first_name", "last_name"} {
		if v, ok := members[k]; ok {
			names[k] = v
		}
	}
	if len(names) > 0 {
		raw, _ := json.Marshal(names)
		patch, errs := DecodeContactProperties(raw)
		for _, e := range errs {
			d.fail(e.Field, e.Code, e.Detail)
		}
		if patch != nil {
			in.Patch.FirstName, in.Patch.LastName = patch.FirstName, patch.LastName
		}
	}
	if raw, ok := members["properties"]; ok && !isNull(raw) {
		if detail, code := checkObject(raw); detail != "" {
			d.fail("properties", code, detail)
		} else {
			var props map[string]json.RawMessage
			_ = json.Unmarshal(raw, &props)
			set := map[string]json.RawMessage{}
			for k, v := range props {
				if isNull(v) {
					in.Patch.Unset = append(in.Patch.Unset, k)
				} else {
					set[k] = v
				}
			}
			if len(set) > 0 {
				in.Patch.Set, _ = json.Marshal(set)
			}
		}
	}
	return in, d.sorted(), nil
}

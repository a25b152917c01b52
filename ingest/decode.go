// Package ingest turns what an application sends into events ready to
// record: it decodes and validates one event or a batch, naming the field at
// fault, and records accepted events through the store, committing
// concurrent single events together.
package ingest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/signalbox/signalbox/store"
)

// Limits on what one event may carry.
const (
	MaxNameLen        = 255
	MaxExternalIDLen  = 255
	MaxEmailLen       = 254
	MaxContactNameLen = 255
	// MaxPropertiesBytes caps properties (and contact_properties) as JSON.
	MaxPropertiesBytes = 32 << 10
	// MaxDepth caps nesting: the properties object itself is level 1.
	MaxDepth = 10
	// MaxFuture is how far ahead of the server's clock occurred_at may be.
	MaxFuture = time.Hour
	// maxGoalValue keeps goal_value inside numeric(20,4).
	maxGoalValue = 1e16
	// maxNumberLen bounds one number in properties, as text.
	maxNumberLen = 64
)

// Codes name what is wrong with a field; clients can switch on them.
const (
	CodeRequired        = "required"
	CodeInvalid         = "invalid"
	CodeType            = "invalid_type"
	CodeUnknownField    = "unknown_field"
	CodeTooLong         = "too_long"
	CodeTooLarge        = "too_large"
	CodeTooDeep         = "too_deep"
	CodeFuture          = "in_future"
	CodeConflict        = "conflict"
	CodeContactNotFound = "contact_not_found"
)

// GoalTypes are the accepted values of goal_type.
var GoalTypes = []string{"purchase", "subscription", "lead", "signup", "booking", "trial", "other"}

// FieldError says what is wrong with one field of the input.
type FieldError struct {
	// Field is the JSON member at fault, dotted for nested ones
	// ("contact_properties.first_name"); empty for the whole document.
	Field string `json:"field"`
	// Pointer locates the fault in a nested document (RFC 6901), as in
	// automation definitions: "/steps/2/yes/0/condition".
	Pointer string `json:"pointer,omitempty"`
	Code    string `json:"code"`
	// Keyword is the JSON Schema keyword that failed, for schema
	// violations ("type", "required").
	Keyword string `json:"keyword,omitempty"`
	Detail  string `json:"detail"`
}

func (e FieldError) Error() string {
	if e.Field == "" {
		return e.Detail
	}
	return e.Field + ": " + e.Detail
}

// ErrMalformed is returned when the body is not JSON at all.
var ErrMalformed = errors.New("malformed JSON")

// eventFields are the members an event may have, in documentation order.
var eventFields = []string{"name", "contact_id", "email", "contact_name", "create_if_missing",
	"contact_properties", "properties", "external_id", "goal_type", "goal_value", "occurred_at"}

// DecodeEvent decodes and validates one event. now is the server's clock,
// used as the default occurred_at and to refuse events from the future. It
// returns ErrMalformed for input that is not JSON, and otherwise every
// problem found, one per field.
func DecodeEvent(data []byte, now time.Time) (store.EventInput, []FieldError, error) {
	if !utf8.Valid(data) {
		return store.EventInput{}, nil, fmt.Errorf("%w: not UTF-8", ErrMalformed)
	}
	if !json.Valid(data) {
		return store.EventInput{}, nil, ErrMalformed
	}
	in, errs := decodeEvent(data, now)
	return in, errs, nil
}

// decodeEvent works on JSON already known to be valid.
func decodeEvent(data []byte, now time.Time) (store.EventInput, []FieldError) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return store.EventInput{}, []FieldError{{Code: CodeType, Detail: "an event must be a JSON object"}}
	}
	d := decoder{members: members}
	var in store.EventInput
	for _, key := range slices.Sorted(maps.Keys(members)) {
		if !contains(eventFields, key) {
			d.fail(key, CodeUnknownField, "unknown field")
		}
	}

	if name, ok := d.string("name"); !ok || name == "" {
		if ok || !d.failed("name") {
			d.fail("name", CodeRequired, "name is required")
		}
	} else if detail := CheckEventName(name); detail != "" {
		d.fail("name", CodeInvalid, detail)
	} else {
		in.Name = name
	}

	idText, hasID := d.string("contact_id")
	email, hasEmail := d.string("email")
	switch {
	case hasID && hasEmail:
		d.fail("email", CodeInvalid, "give contact_id or email, not both")
	case hasID:
		id, err := uuid.Parse(idText)
		switch {
		case err != nil:
			d.fail("contact_id", CodeInvalid, "contact_id must be a UUID")
		case id == uuid.Nil:
			// The nil UUID names no contact; letting it through would leave
			// the event with no contact reference at all.
			d.fail("contact_id", CodeInvalid, "contact_id must not be the nil UUID")
		}
		in.ContactID = id
	case hasEmail:
		norm, detail := NormalizeEmail(email)
		if detail != "" {
			d.fail("email", CodeInvalid, detail)
		}
		in.Email = norm
	case !d.failed("contact_id") && !d.failed("email"):
		d.fail("email", CodeRequired, "contact_id or email is required")
	}

	if v, ok := d.string("contact_name"); ok {
		if detail := checkText(v, MaxContactNameLen); detail != "" {
			d.fail("contact_name", CodeInvalid, detail)
		}
		in.ContactName = v
	}
	if v, ok := d.bool("create_if_missing"); ok {
		in.CreateIfMissing = v
		if v && hasID {
			d.fail("create_if_missing", CodeInvalid, "create_if_missing needs email, not contact_id")
		}
	}
	if raw, ok := d.members["contact_properties"]; ok && !isNull(raw) {
		patch, errs := DecodeContactProperties(raw)
		for _, e := range errs {
			d.fail(joinField("contact_properties", e.Field), e.Code, e.Detail)
		}
		in.ContactPatch = patch
	}

	in.Properties = json.RawMessage(`{}`)
	if raw, ok := d.members["properties"]; ok && !isNull(raw) {
		if detail, code := checkObject(raw); detail != "" {
			d.fail("properties", code, detail)
		} else {
			in.Properties = raw
		}
	}

	if v, ok := d.string("external_id"); ok {
		if v == "" {
			d.fail("external_id", CodeInvalid, "external_id must not be empty")
		} else if detail := checkText(v, MaxExternalIDLen); detail != "" {
			d.fail("external_id", CodeInvalid, detail)
		}
		in.ExternalID = v
	}

	goalType, hasGoalType := d.string("goal_type")
	if hasGoalType && !contains(GoalTypes, goalType) {
		d.fail("goal_type", CodeInvalid, "goal_type must be one of "+strings.Join(GoalTypes, ", "))
	}
	in.GoalType = goalType
	if raw, ok := d.members["goal_value"]; ok && !isNull(raw) {
		text := string(bytes.TrimSpace(raw))
		f, err := strconv.ParseFloat(text, 64)
		switch {
		case err != nil && !isNumber(text):
			d.fail("goal_value", CodeType, "goal_value must be a number")
		case err != nil || math.Abs(f) >= maxGoalValue:
			d.fail("goal_value", CodeInvalid, "goal_value is out of range")
		case !hasGoalType:
			d.fail("goal_value", CodeInvalid, "goal_value needs a goal_type")
		default:
			in.GoalValue = text
		}
	} else if goalType == "purchase" || goalType == "subscription" {
		d.fail("goal_value", CodeRequired, "goal_value is required for goal_type "+goalType)
	}

	in.OccurredAt = now
	if v, ok := d.string("occurred_at"); ok {
		t, err := time.Parse(time.RFC3339Nano, v)
		switch {
		case err != nil:
			d.fail("occurred_at", CodeInvalid, "occurred_at must be an RFC 3339 timestamp")
		case t.After(now.Add(MaxFuture)):
			d.fail("occurred_at", CodeFuture, "occurred_at is more than 1h in the future")
		case t.Year() < 1970:
			d.fail("occurred_at", CodeInvalid, "occurred_at is before 1970")
		default:
			in.OccurredAt = t.UTC()
		}
	}
	return in, d.sorted()
}

// DecodeContactProperties reads a contact patch object: first_name and
// last_name set the names, other members set custom properties, and null
// removes one. Field names in the errors are relative to the object.
func DecodeContactProperties(raw json.RawMessage) (*store.ContactPatch, []FieldError) {
	if detail, code := checkObject(raw); detail != "" {
		return nil, []FieldError{{Code: code, Detail: detail}}
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return nil, []FieldError{{Code: CodeType, Detail: "must be an object"}}
	}
	d := decoder{members: members}
	p := &store.ContactPatch{}
	for _, key := range []string{"first_name", "last_name"} {
		target := &p.FirstName
		if key == "last_name" {
			target = &p.LastName
		}
		if raw, ok := members[key]; ok && isNull(raw) {
			empty := ""
			*target = &empty
		} else if v, ok := d.string(key); ok {
			if detail := checkText(v, MaxContactNameLen); detail != "" {
				d.fail(key, CodeInvalid, detail)
			}
			*target = &v
		}
		delete(members, key)
	}
	set := map[string]json.RawMessage{}
	for k, v := range members {
		if strings.ContainsRune(k, 0) {
			d.fail("", CodeInvalid, "property names must not contain NUL")
			continue
		}
		if isNull(v) {
			p.Unset = append(p.Unset, k)
		} else {
			set[k] = v
		}
	}
	if len(set) > 0 {
		b, err := json.Marshal(set)
		if err != nil {
			d.fail("", CodeInvalid, "cannot encode properties")
		}
		p.Set = b
	}
	return p, d.sorted()
}

// CheckEventName returns why name is not a valid event name, or "".
func CheckEventName(name string) string {
	if len(name) > MaxNameLen {
		return fmt.Sprintf("name is longer than %d characters", MaxNameLen)
	}
	for i, r := range name {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if i == 0 && !letter {
			return "name must start with a letter"
		}
		if !letter && !(r >= '0' && r <= '9') && !strings.ContainsRune("_.-/", r) {
			return "name may hold only letters, digits and _ . - /"
		}
	}
	return ""
}

// NormalizeEmail validates an address and lower-cases it, or says why not.
func NormalizeEmail(s string) (string, string) {
	if len(s) > MaxEmailLen {
		return "", "email is too long"
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s || !strings.Contains(s[strings.LastIndexByte(s, '@')+1:], ".") {
		return "", "email is not a valid address"
	}
	return strings.ToLower(s), ""
}

// decoder reads typed members and collects one error per field.
type decoder struct {
	members map[string]json.RawMessage
	errs    []FieldError
	seen    map[string]bool
}

// maxFieldErrors caps the errors reported for one document, so a body of
// thousands of unknown members costs no more than a few.
const maxFieldErrors = 20

func (d *decoder) fail(field, code, detail string) {
	if d.seen == nil {
		d.seen = map[string]bool{}
	}
	if !d.seen[field] && len(d.errs) < maxFieldErrors {
		d.seen[field] = true
		d.errs = append(d.errs, FieldError{Field: field, Code: code, Detail: detail})
	}
}

func (d *decoder) failed(field string) bool { return d.seen[field] }

// string reads an optional string member; null counts as absent.
func (d *decoder) string(key string) (string, bool) {
	raw, ok := d.members[key]
	if !ok || isNull(raw) {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		d.fail(key, CodeType, key+" must be a string")
		return "", false
	}
	return s, true
}

func (d *decoder) bool(key string) (bool, bool) {
	raw, ok := d.members[key]
	if !ok || isNull(raw) {
		return false, false
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		d.fail(key, CodeType, key+" must be a boolean")
		return false, false
	}
	return b, true
}

func (d *decoder) sorted() []FieldError {
	// Report fields in documentation order, unknown ones last.
	order := func(f string) int {
		head, _, _ := strings.Cut(f, ".")
		for i, name := range eventFields {
			if name == head {
				return i
			}
		}
		return len(eventFields)
	}
	slices.SortStableFunc(d.errs, func(a, b FieldError) int {
		if c := cmp.Compare(order(a.Field), order(b.Field)); c != 0 {
			return c
		}
		return strings.Compare(a.Field, b.Field)
	})
	return d.errs
}

// CheckProperties checks an event's properties as ingest does (a JSON
// object within the size and depth caps, numbers that fit a float, no NUL)
// and says why not, or returns nil. Events that automations emit pass the
// same check.
func CheckProperties(raw json.RawMessage) *FieldError {
	if detail, code := checkObject(raw); detail != "" {
		return &FieldError{Field: "properties", Code: code, Detail: detail}
	}
	return nil
}

// checkObject checks that raw is a JSON object within the size and depth
// caps, holding nothing PostgreSQL's jsonb refuses (the \u0000 escape).
func checkObject(raw json.RawMessage) (detail, code string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return "must be a JSON object", CodeType
	}
	if len(raw) > MaxPropertiesBytes {
		return fmt.Sprintf("must be at most %d bytes of JSON", MaxPropertiesBytes), CodeTooLarge
	}
	depth, maxDepth, inString := 0, 0, false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inString {
			switch c {
			case '\\':
				if bytes.HasPrefix(raw[i+1:], []byte("u0000")) {
					return "must not contain the \\u0000 character", CodeInvalid
				}
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch {
		case c == '-' || c >= '0' && c <= '9':
			// jsonb keeps numbers as numeric, which refuses huge exponents
			// and very long fractions; CEL sees them as doubles anyway.
			end := i + 1
			for end < len(raw) && strings.IndexByte("0123456789+-.eE", raw[end]) >= 0 {
				end++
			}
			if _, err := strconv.ParseFloat(string(raw[i:end]), 64); err != nil || end-i > maxNumberLen {
				return "numbers must fit in a 64-bit float", CodeInvalid
			}
			i = end - 1
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			maxDepth = max(maxDepth, depth)
		case '}', ']':
			depth--
		}
	}
	if maxDepth > MaxDepth {
		return fmt.Sprintf("must be at most %d levels deep", MaxDepth), CodeTooDeep
	}
	return "", ""
}

func checkText(s string, maxLen int) string {
	if utf8.RuneCountInString(s) > maxLen {
		return fmt.Sprintf("must be at most %d characters", maxLen)
	}
	if strings.ContainsRune(s, 0) {
		return "must not contain NUL"
	}
	return ""
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func isNumber(s string) bool {
	return s != "" && (s[0] == '-' || s[0] >= '0' && s[0] <= '9')
}

func joinField(parent, child string) string {
	if child == "" {
		return parent
	}
	return parent + "." + child
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

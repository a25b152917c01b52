// Package source turns what third parties post to an inbound source's URL
// into events: it decodes and validates a source's definition (dot-paths
// into the payload, a fixed event name, a signature check), verifies
// signatures as Stripe, Standard Webhooks and plain HMAC senders make them,
// and maps a payload to an event ready to record, or says why it cannot.
package source

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/signalbox/signalbox/ingest"
)

// Verification types.
const (
	VerifyNone             = "none"
	VerifyHMAC             = "hmac_sha256"
	VerifyStripe           = "stripe"
	VerifyStandardWebhooks = "standard_webhooks"
)

// Limits on a definition.
const (
	MaxNameLen           = 255
	MaxPathLen           = 512
	MaxPathSegments      = 32
	MaxContactProperties = 50
	MaxSecretLen         = 1024
)

// Definition is how a source maps a payload to an event and checks who
// sent it. It is stored as this JSON document, secret included.
type Definition struct {
	EmailPath     string `json:"email_path"`
	EventName     string `json:"event_name,omitempty"`
	EventNamePath string `json:"event_name_path,omitempty"`
	// PropertiesPath "" means the whole payload.
	PropertiesPath    string            `json:"properties_path,omitempty"`
	ExternalIDPath    string            `json:"external_id_path,omitempty"`
	ContactProperties map[string]string `json:"contact_properties,omitempty"`
	CreateIfMissing   bool              `json:"create_if_missing"`
	Verification      Verification      `json:"verification"`
}

// Verification says how a source checks a payload's signature.
type Verification struct {
	Type string `json:"type"`
	// Secret is the key: as given for hmac_sha256 and stripe, base64
	// (after an optional whsec_ prefix) for standard_webhooks.
	Secret string `json:"secret,omitempty"`
	// Header carries the signature of hmac_sha256.
	Header string `json:"header,omitempty"`
	// Encoding of an hmac_sha256 signature: hex (default) or base64.
	Encoding string `json:"encoding,omitempty"`
}

// Input is a source as the API creates or patches it.
type Input struct {
	Name       string
	Enabled    bool
	Definition Definition
	// SecretChanged says the body set the secret, or one was generated.
	SecretChanged bool
	// SecretGenerated says the server made the secret (a verification
	// that needs one was given none): the answer shows it, once.
	SecretGenerated bool
}

// NewInput is what a creation starts from: enabled, creating contacts.
func NewInput() Input {
	return Input{Enabled: true, Definition: Definition{CreateIfMissing: true, Verification: Verification{Type: VerifyNone}}}
}

// sourceFields are the members a source body may have.
var sourceFields = []string{"name", "enabled", "email_path", "event_name", "event_name_path", "properties_path",
	"external_id_path", "contact_properties", "create_if_missing", "verification"}

// Decode applies a create or patch body to base and validates the result:
// members present replace base's, a null clears an optional one. Naming
// event_name clears event_name_path and the reverse; a verification whose
// type is unchanged keeps the secret when it names none. It returns
// ingest.ErrMalformed for a body that is not JSON, and otherwise every
// problem found, one per field.
func Decode(body []byte, base Input) (Input, []ingest.FieldError, error) {
	if !utf8.Valid(body) || !json.Valid(body) {
		return base, nil, ingest.ErrMalformed
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		return base, []ingest.FieldError{{Code: ingest.CodeType, Detail: "a source must be a JSON object"}}, nil
	}
	d := &decoder{members: members}
	in := base
	in.SecretChanged, in.SecretGenerated = false, false
	def := &in.Definition
	for _, k := range slices.Sorted(maps.Keys(members)) {
		if !slices.Contains(sourceFields, k) {
			d.fail(k, ingest.CodeUnknownField, "unknown field")
		}
	}
	if v, ok := d.text("name"); ok {
		in.Name = v
	} else if _, present := members["name"]; present && !d.failed("name") {
		d.fail("name", ingest.CodeRequired, "name must not be null")
	}
	if v, ok := d.boolean("enabled"); ok {
		in.Enabled = v
	}
	if v, ok := d.boolean("create_if_missing"); ok {
		def.CreateIfMissing = v
	}
	for _, f := range []struct {
		key    string
		target *string
	}{{"email_path", &def.EmailPath}, {"properties_path", &def.PropertiesPath}, {"external_id_path", &def.ExternalIDPath}} {
		if raw, ok := members[f.key]; ok && isNull(raw) {
			*f.target = ""
		} else if v, ok := d.text(f.key); ok {
			*f.target = v
		}
	}
	name, hasName := d.text("event_name")
	namePath, hasNamePath := d.text("event_name_path")
	switch {
	case hasName && hasNamePath:
		d.fail("event_name", ingest.CodeInvalid, "give event_name or event_name_path, not both")
	case hasName:
		def.EventName, def.EventNamePath = name, ""
	case hasNamePath:
		def.EventName, def.EventNamePath = "", namePath
	}
	for _, k := range []string{"event_name", "event_name_path"} {
		if raw, ok := members[k]; ok && isNull(raw) {
			if k == "event_name" {
				def.EventName = ""
			} else {
				def.EventNamePath = ""
			}
		}
	}
	if raw, ok := members["contact_properties"]; ok {
		def.ContactProperties = nil
		if !isNull(raw) {
			var m map[string]string
			if err := json.Unmarshal(raw, &m); err != nil {
				d.fail("contact_properties", ingest.CodeType, "contact_properties must be an object of dot-paths (strings)")
			} else if len(m) > 0 {
				def.ContactProperties = m
			}
		}
	}
	if raw, ok := members["verification"]; ok {
		in.SecretChanged = d.verification(raw, &def.Verification)
	}
	if !d.failed("verification") && def.Verification.Type != VerifyNone && def.Verification.Type != VerifyStripe &&
		def.Verification.Secret == "" {
		secret, err := newSecret(def.Verification.Type)
		if err != nil {
			return in, nil, err
		}
		def.Verification.Secret, in.SecretChanged, in.SecretGenerated = secret, true, true
	}
	d.validate(in)
	return in, d.errs, nil
}

// verification decodes the verification member into v, keeping v's secret
// when the type stays and no secret is given; it reports whether the body
// set a secret.
func (d *decoder) verification(raw json.RawMessage, v *Verification) bool {
	if isNull(raw) {
		*v = Verification{Type: VerifyNone}
		return false
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		d.fail("verification", ingest.CodeType, "verification must be an object")
		return false
	}
	sub := &decoder{members: members}
	for _, k := range slices.Sorted(maps.Keys(members)) {
		if !slices.Contains([]string{"type", "secret", "header", "encoding"}, k) {
			sub.fail(k, ingest.CodeUnknownField, "unknown field")
		}
	}
	next := Verification{Type: VerifyNone}
	if t, ok := sub.text("type"); ok {
		next.Type = t
	}
	next.Header, _ = sub.text("header")
	next.Encoding, _ = sub.text("encoding")
	secret, hasSecret := sub.text("secret")
	if hasSecret {
		next.Secret = secret
	} else if next.Type == v.Type {
		next.Secret = v.Secret
	}
	for _, e := range sub.errs {
		d.fail("verification."+e.Field, e.Code, e.Detail)
	}
	*v = next
	return hasSecret
}

// validate checks the whole source after the body was applied.
func (d *decoder) validate(in Input) {
	def := in.Definition
	if in.Name == "" && !d.failed("name") {
		d.fail("name", ingest.CodeRequired, "name is required")
	} else if utf8.RuneCountInString(in.Name) > MaxNameLen || strings.ContainsRune(in.Name, 0) {
		d.fail("name", ingest.CodeInvalid, fmt.Sprintf("name must be at most %d characters, without NUL", MaxNameLen))
	}
	if def.EmailPath == "" {
		if !d.failed("email_path") {
			d.fail("email_path", ingest.CodeRequired, "email_path is required (a dot-path such as data.object.customer_email)")
		}
	} else {
		d.path("email_path", def.EmailPath)
	}
	switch {
	case d.failed("event_name") || d.failed("event_name_path"):
	case def.EventName == "" && def.EventNamePath == "":
		d.fail("event_name", ingest.CodeRequired, "event_name or event_name_path is required")
	case def.EventName != "":
		if detail := ingest.CheckEventName(def.EventName); detail != "" {
			d.fail("event_name", ingest.CodeInvalid, detail)
		}
	default:
		d.path("event_name_path", def.EventNamePath)
	}
	if def.PropertiesPath != "" {
		d.path("properties_path", def.PropertiesPath)
	}
	if def.ExternalIDPath != "" {
		d.path("external_id_path", def.ExternalIDPath)
	}
	if len(def.ContactProperties) > MaxContactProperties {
		d.fail("contact_properties", ingest.CodeInvalid, fmt.Sprintf("at most %d contact properties", MaxContactProperties))
	}
	for _, k := range slices.Sorted(maps.Keys(def.ContactProperties)) {
		field := "contact_properties." + k
		if k == "" || utf8.RuneCountInString(k) > MaxNameLen || strings.ContainsRune(k, 0) {
			d.fail(field, ingest.CodeInvalid, fmt.Sprintf("a contact property name is 1 to %d characters, without NUL", MaxNameLen))
			continue
		}
		if k == "email" {
			d.fail(field, ingest.CodeInvalid, "the contact's email comes from email_path")
			continue
		}
		d.path(field, def.ContactProperties[k])
	}
	if !d.failed("verification") {
		d.checkVerification(def.Verification)
	}
}

// checkVerification checks a verification against its type.
func (d *decoder) checkVerification(v Verification) {
	switch v.Type {
	case VerifyNone:
		if v.Secret != "" || v.Header != "" || v.Encoding != "" {
			d.fail("verification.type", ingest.CodeInvalid, "secret, header and encoding need a verification type")
		}
		return
	case VerifyHMAC:
		if v.Header == "" {
			d.fail("verification.header", ingest.CodeRequired, "hmac_sha256 needs the header that carries the signature")
		} else if !validHeaderName(v.Header) {
			d.fail("verification.header", ingest.CodeInvalid, "header must be an HTTP header name")
		}
		if v.Encoding != "" && v.Encoding != "hex" && v.Encoding != "base64" {
			d.fail("verification.encoding", ingest.CodeInvalid, "encoding must be hex or base64")
		}
	case VerifyStripe, VerifyStandardWebhooks:
		if v.Header != "" && !strings.EqualFold(v.Header, fixedHeader(v.Type)) {
			d.fail("verification.header", ingest.CodeInvalid, fmt.Sprintf("%s signatures come in %s", v.Type, fixedHeader(v.Type)))
		}
		if v.Encoding != "" {
			d.fail("verification.encoding", ingest.CodeInvalid, "encoding applies to hmac_sha256 only")
		}
	default:
		d.fail("verification.type", ingest.CodeInvalid, "type must be none, hmac_sha256, stripe or standard_webhooks")
		return
	}
	switch {
	case v.Secret == "":
		d.fail("verification.secret", ingest.CodeRequired, "stripe needs the endpoint's signing secret (whsec_...)")
	case len(v.Secret) > MaxSecretLen:
		d.fail("verification.secret", ingest.CodeTooLong, fmt.Sprintf("secret must be at most %d characters", MaxSecretLen))
	case v.Type == VerifyStandardWebhooks:
		if key, err := standardKey(v.Secret); err != nil || len(key) < 16 {
			d.fail("verification.secret", ingest.CodeInvalid, "a Standard Webhooks secret is whsec_ and at least 16 bytes in base64")
		}
	}
}

// fixedHeader is the header a provider's signature comes in.
func fixedHeader(typ string) string {
	if typ == VerifyStripe {
		return "Stripe-Signature"
	}
	return "webhook-signature"
}

// newSecret makes a secret for a verification created without one: 32
// random bytes, as base64url for hmac_sha256 (used as given) and as a
// whsec_ secret for Standard Webhooks.
func newSecret(typ string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate source secret: %w", err)
	}
	if typ == VerifyStandardWebhooks {
		return "whsec_" + base64.StdEncoding.EncodeToString(b), nil
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// SecretHint shows enough of a secret to tell which one is set, never the
// secret: its whsec_ prefix if any and its last four characters.
func SecretHint(secret string) string {
	if secret == "" {
		return ""
	}
	prefix := ""
	if strings.HasPrefix(secret, "whsec_") {
		prefix = "whsec_"
	}
	if len(secret)-len(prefix) < 12 {
		return prefix + "…"
	}
	return prefix + "…" + secret[len(secret)-4:]
}

// path checks a dot-path: segments of letters, digits and _ - $ :, a
// number indexing an array.
func (d *decoder) path(field, p string) {
	if len(p) > MaxPathLen {
		d.fail(field, ingest.CodeTooLong, fmt.Sprintf("a path is at most %d characters", MaxPathLen))
		return
	}
	segments := strings.Split(p, ".")
	if len(segments) > MaxPathSegments {
		d.fail(field, ingest.CodeInvalid, fmt.Sprintf("a path has at most %d segments", MaxPathSegments))
		return
	}
	for _, s := range segments {
		if s == "" {
			d.fail(field, ingest.CodeInvalid, "a path is segments joined by dots, none empty (data.object.customer_email)")
			return
		}
		for _, r := range s {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-$:", r)) {
				d.fail(field, ingest.CodeInvalid, fmt.Sprintf("path segment %q may hold only letters, digits and _ - $ :", s))
				return
			}
		}
	}
}

func validHeaderName(h string) bool {
	if h == "" || len(h) > 128 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return http.CanonicalHeaderKey(h) != ""
}

// decoder reads typed members and collects one error per field.
type decoder struct {
	members map[string]json.RawMessage
	errs    []ingest.FieldError
	seen    map[string]bool
}

func (d *decoder) fail(field, code, detail string) {
	if d.seen == nil {
		d.seen = map[string]bool{}
	}
	if !d.seen[field] && len(d.errs) < 20 {
		d.seen[field] = true
		d.errs = append(d.errs, ingest.FieldError{Field: field, Code: code, Detail: detail})
	}
}

func (d *decoder) failed(field string) bool { return d.seen[field] }

// text reads an optional string member; null counts as absent.
func (d *decoder) text(key string) (string, bool) {
	raw, ok := d.members[key]
	if !ok || isNull(raw) {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		d.fail(key, ingest.CodeType, key+" must be a string")
		return "", false
	}
	return s, true
}

func (d *decoder) boolean(key string) (bool, bool) {
	raw, ok := d.members[key]
	if !ok || isNull(raw) {
		return false, false
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		d.fail(key, ingest.CodeType, key+" must be a boolean")
		return false, false
	}
	return b, true
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

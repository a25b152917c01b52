package source

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/signalbox/signalbox/ingest"
	"github.com/signalbox/signalbox/store"
)

// Map turns a payload into the event the definition describes, or says why
// it cannot: the reason a skipped delivery keeps. The payload is read in
// place, path by path (gjson walks the bytes without decoding them into
// maps), and validated as POST /v1/events validates an event.
func (def *Definition) Map(payload []byte, now time.Time) (store.EventInput, string) {
	var in store.EventInput
	if !utf8.Valid(payload) || !gjson.ValidBytes(payload) {
		return in, "the payload is not valid JSON"
	}
	email := gjson.GetBytes(payload, def.EmailPath)
	switch {
	case !email.Exists() || email.Type == gjson.Null:
		return in, fmt.Sprintf("no email at %s", def.EmailPath)
	case email.Type != gjson.String:
		return in, fmt.Sprintf("the email at %s is not a string", def.EmailPath)
	}
	norm, detail := ingest.NormalizeEmail(email.Str)
	if detail != "" {
		return in, fmt.Sprintf("the email at %s, %q: %s", def.EmailPath, email.Str, detail)
	}
	in.Email, in.CreateIfMissing = norm, def.CreateIfMissing

	in.Name = def.EventName
	if def.EventNamePath != "" {
		name := gjson.GetBytes(payload, def.EventNamePath)
		switch {
		case !name.Exists() || name.Type == gjson.Null:
			return in, fmt.Sprintf("no event name at %s", def.EventNamePath)
		case name.Type != gjson.String:
			return in, fmt.Sprintf("the event name at %s is not a string", def.EventNamePath)
		}
		if detail := ingest.CheckEventName(name.Str); detail != "" || name.Str == "" {
			if detail == "" {
				detail = "name is empty"
			}
			return in, fmt.Sprintf("the event name at %s, %q: %s", def.EventNamePath, name.Str, detail)
		}
		in.Name = name.Str
	}

	props := json.RawMessage(payload)
	where := "the payload"
	if def.PropertiesPath != "" {
		r := gjson.GetBytes(payload, def.PropertiesPath)
		if !r.Exists() || r.Type == gjson.Null {
			return in, fmt.Sprintf("no properties at %s", def.PropertiesPath)
		}
		props, where = json.RawMessage(r.Raw), "the properties at "+def.PropertiesPath
	}
	if fe := ingest.CheckProperties(props); fe != nil {
		if def.PropertiesPath == "" {
			return in, fmt.Sprintf("%s: %s; properties_path can pick part of it", where, fe.Detail)
		}
		return in, fmt.Sprintf("%s: %s", where, fe.Detail)
	}
	in.Properties = props

	if def.ExternalIDPath != "" {
		r := gjson.GetBytes(payload, def.ExternalIDPath)
		var ext string
		switch r.Type {
		case gjson.String:
			ext = r.Str
		case gjson.Number:
			ext = r.Raw
		}
		switch {
		case !r.Exists() || r.Type == gjson.Null:
			return in, fmt.Sprintf("no external id at %s", def.ExternalIDPath)
		case ext == "":
			return in, fmt.Sprintf("the external id at %s is not a string or a number", def.ExternalIDPath)
		case utf8.RuneCountInString(ext) > ingest.MaxExternalIDLen:
			return in, fmt.Sprintf("the external id at %s is longer than %d characters", def.ExternalIDPath, ingest.MaxExternalIDLen)
		}
		in.ExternalID = ext
	}

	if len(def.ContactProperties) > 0 {
		set := map[string]json.RawMessage{}
		for _, k := range slices.Sorted(maps.Keys(def.ContactProperties)) {
			r := gjson.GetBytes(payload, def.ContactProperties[k])
			if r.Exists() && r.Type != gjson.Null {
				set[k] = json.RawMessage(r.Raw)
			}
		}
		if len(set) > 0 {
			raw, err := json.Marshal(set)
			if err != nil {
				return in, "contact_properties: " + err.Error()
			}
			patch, errs := ingest.DecodeContactProperties(raw)
			if len(errs) > 0 {
				return in, "contact_properties: " + errs[0].Error()
			}
			in.ContactPatch = patch
		}
	}
	in.OccurredAt = now
	return in, ""
}

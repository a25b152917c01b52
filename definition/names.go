package definition

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// MaxEventNameLength is the longest event name, in bytes (event names are ASCII).
const MaxEventNameLength = 255

// CheckEventName returns an error describing why name is not a valid event name, or nil. An
// event name is 1 to 255 ASCII characters: a letter, then letters, digits, '_', '.', '-' or '/'.
// Keeping names ASCII rules out look-alike characters in names that trigger automations.
func CheckEventName(name string) error {
	switch {
	case name == "":
		return errors.New("event name must not be empty")
	case len(name) > MaxEventNameLength:
		return fmt.Errorf("event name is %d characters long; at most %d are allowed", len(name), MaxEventNameLength)
	case !isLetter(name[0]):
		return fmt.Errorf("event name %q must start with a letter", name)
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !isLetter(c) && !isDigit(c) && !strings.ContainsRune("_.-/", rune(c)) {
			return fmt.Errorf("event name %q may contain only letters, digits, '_', '.', '-' and '/'", name)
		}
	}
	return nil
}

// maxStepIDLength is the longest step id; ids end up inside activity and workflow ids.
const maxStepIDLength = 64

// checkStepID allows 1 to 64 characters of [A-Za-z0-9_-], so that an id can be embedded in
// Temporal ids and URLs without escaping.
func checkStepID(id string) error {
	switch {
	case id == "":
		return errors.New(requiredDetail)
	case len(id) > maxStepIDLength:
		return fmt.Errorf("step id is %d characters long; at most %d are allowed", len(id), maxStepIDLength)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !isLetter(c) && !isDigit(c) && c != '_' && c != '-' {
			return fmt.Errorf("step id %q may contain only letters, digits, '_' and '-'", id)
		}
	}
	return nil
}

// maxKeyLength bounds the names in body and properties objects.
const maxKeyLength = 255

func checkKey(k string) error {
	switch n := utf8.RuneCountInString(k); {
	case strings.TrimSpace(k) == "":
		return errors.New("name must not be empty")
	case n > maxKeyLength:
		return fmt.Errorf("name is %d characters long; at most %d are allowed", n, maxKeyLength)
	}
	return nil
}

// reservedHeaders are set by the webhook sender itself: transport framing, and the Standard
// Webhooks signature headers that a user value must never be able to forge or break.
var reservedHeaders = []string{
	"connection", "content-length", "host", "keep-alive", "proxy-authorization", "proxy-connection",
	"te", "trailer", "transfer-encoding", "upgrade",
	"webhook-id", "webhook-signature", "webhook-timestamp",
}

// maxHeaderValueLength bounds one header value; servers commonly refuse 8 KiB of headers in all.
const maxHeaderValueLength = 4096

// checkHeader requires an RFC 9110 token as the name and a value free of control characters,
// which is what stops a value from smuggling in a second header.
func checkHeader(name, value string) error {
	if name == "" {
		return errors.New("header name must not be empty")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isLetter(c) && !isDigit(c) && !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return fmt.Errorf("header name %q is not a valid HTTP token", name)
		}
	}
	if slices.Contains(reservedHeaders, strings.ToLower(name)) {
		return fmt.Errorf("header %q is set by Signalbox and cannot be overridden", name)
	}
	if len(value) > maxHeaderValueLength {
		return fmt.Errorf("header value is %d bytes long; at most %d are allowed", len(value), maxHeaderValueLength)
	}
	for _, r := range value {
		if r != '\t' && (r < 0x20 || r == 0x7f) {
			return errors.New("header value must not contain control characters")
		}
	}
	return nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// unknownFieldDetail names the unknown field and, since most unknown fields are typos, the known
// field it most likely meant, or else the fields that are allowed.
func unknownFieldDetail(name string, known fieldSet) string {
	names := make([]string, 0, len(known))
	for k := range known {
		names = append(names, k)
	}
	slices.Sort(names)
	// Suggest only close matches: within two edits, or one for very short names, where two
	// edits can turn anything into anything.
	limit := 2
	if len(name) < 4 {
		limit = 1
	}
	best, bestDist := "", limit+1
	for _, k := range names {
		if d := editDistance(strings.ToLower(name), k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown field %q; did you mean %q?", name, best)
	}
	return fmt.Sprintf("unknown field %q; allowed fields are %s", name, strings.Join(names, ", "))
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

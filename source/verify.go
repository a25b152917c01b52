package source

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Tolerance is how far a signed timestamp (Stripe's t=, Standard Webhooks'
// webhook-timestamp) may be from the server's clock, either way: Stripe's
// libraries and the Standard Webhooks specification both use 5 minutes,
// which bounds how long a captured request can be replayed.
const Tolerance = 5 * time.Minute

// ErrSignature is the family of every verification failure; the wrapped
// text says what was wrong, and is kept as the delivery's reason.
var ErrSignature = errors.New("signature verification failed")

func sigErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSignature, fmt.Sprintf(format, args...))
}

// Verify checks a payload's signature as the verification says; nil when
// it holds (or there is none to check).
func (v Verification) Verify(h http.Header, body []byte, now time.Time) error {
	switch v.Type {
	case VerifyHMAC:
		return v.verifyHMAC(h, body)
	case VerifyStripe:
		return verifyStripe(v.Secret, h.Get("Stripe-Signature"), body, now)
	case VerifyStandardWebhooks:
		return verifyStandard(v.Secret, h, body, now)
	}
	return nil
}

// verifyHMAC checks HMAC-SHA256 of the raw body, keyed by the secret as
// given, in the named header as hex or base64; a "sha256=" prefix (as
// GitHub sends) is allowed.
func (v Verification) verifyHMAC(h http.Header, body []byte) error {
	got := strings.TrimSpace(h.Get(v.Header))
	if got == "" {
		return sigErr("no %s header", v.Header)
	}
	got = strings.TrimPrefix(got, "sha256=")
	encoding, decode := "hex", hex.DecodeString
	if v.Encoding == "base64" {
		encoding, decode = "base64", base64.StdEncoding.DecodeString
	}
	sig, err := decode(got)
	if err != nil {
		return sigErr("%s is not %s", v.Header, encoding)
	}
	if !hmac.Equal(sig, mac([]byte(v.Secret), body)) {
		return sigErr("the %s signature does not match the body", v.Header)
	}
	return nil
}

// verifyStripe checks a Stripe-Signature header, "t=TIMESTAMP,v1=SIG[,v1=SIG...]":
// SIG is hex HMAC-SHA256 of "TIMESTAMP.BODY" keyed by the endpoint secret
// as given (whsec_ included); any v1 may match (Stripe sends one per
// secret while a secret is rolled); t must be within Tolerance.
func verifyStripe(secret, header string, body []byte, now time.Time) error {
	if header == "" {
		return sigErr("no Stripe-Signature header")
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = val
		case "v1":
			if b, err := hex.DecodeString(val); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return sigErr("Stripe-Signature has no timestamp t=")
	}
	if len(sigs) == 0 {
		return sigErr("Stripe-Signature has no v1 signature")
	}
	if err := checkTimestamp(t, now); err != nil {
		return err
	}
	want := mac([]byte(secret), []byte(ts), []byte("."), body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return sigErr("no v1 signature of Stripe-Signature matches the body")
}

// verifyStandard checks Standard Webhooks headers: webhook-signature holds
// space-separated "v1,BASE64" entries, each HMAC-SHA256 of
// "ID.TIMESTAMP.BODY" keyed by the base64 secret after its whsec_ prefix.
func verifyStandard(secret string, h http.Header, body []byte, now time.Time) error {
	id, ts, header := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || header == "" {
		return sigErr("webhook-id, webhook-timestamp and webhook-signature are required")
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return sigErr("webhook-timestamp is not a Unix time")
	}
	if err := checkTimestamp(t, now); err != nil {
		return err
	}
	key, err := standardKey(secret)
	if err != nil {
		return sigErr("the source's secret is not base64")
	}
	want := mac(key, []byte(id), []byte("."), []byte(ts), []byte("."), body)
	for _, entry := range strings.Fields(header) {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue
		}
		if b, err := base64.StdEncoding.DecodeString(sig); err == nil && hmac.Equal(b, want) {
			return nil
		}
	}
	return sigErr("no v1 signature of webhook-signature matches the body")
}

// standardKey decodes a Standard Webhooks secret.
func standardKey(secret string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
}

func checkTimestamp(t int64, now time.Time) error {
	at := time.Unix(t, 0)
	if d := now.Sub(at); d > Tolerance || d < -Tolerance {
		return sigErr("the signed timestamp %s is more than %s from the server's clock", at.UTC().Format(time.RFC3339), Tolerance)
	}
	return nil
}

func mac(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

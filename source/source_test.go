package source_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/source"
)

func TestMapReadsPathsIntoObjectsAndArrays(t *testing.T) {
	t.Parallel()
	def := source.Definition{EmailPath: "buyer.contact.email", EventNamePath: "meta.kind", PropertiesPath: "items.1",
		ExternalIDPath: "order_no", CreateIfMissing: true,
		ContactProperties: map[string]string{"first_name": "buyer.name", "first_sku": "items.0.sku", "absent": "nope.nothing"}}
	payload := []byte(`{"order_no": 123456789012345678, "meta": {"kind": "order.paid"},
		"buyer": {"name": "Ada", "contact": {"email": "ADA@example.com"}},
		"items": [{"sku": "A-1", "qty": 1}, {"sku": "B-2", "qty": 3}]}`)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	in, reason := def.Map(payload, now)
	require.Empty(t, reason)
	require.Equal(t, "ada@example.com", in.Email)
	require.Equal(t, "order.paid", in.Name)
	require.JSONEq(t, `{"sku": "B-2", "qty": 3}`, string(in.Properties))
	require.Equal(t, "123456789012345678", in.ExternalID, "a number keeps its digits")
	require.True(t, in.CreateIfMissing)
	require.Equal(t, now, in.OccurredAt)
	require.Equal(t, "Ada", *in.ContactPatch.FirstName)
	require.JSONEq(t, `{"first_sku": "A-1"}`, string(in.ContactPatch.Set))

	for path, want := range map[string]string{
		"items.5":   "no properties at items.5",
		"items.0.x": "no properties at items.0.x",
	} {
		d := def
		d.PropertiesPath = path
		_, reason := d.Map(payload, now)
		require.Equal(t, want, reason)
	}
	d := def
	d.ExternalIDPath = "items"
	_, reason = d.Map(payload, now)
	require.Equal(t, "the external id at items is not a string or a number", reason)
}

func TestDecodeKeepsSecretAndShowsHint(t *testing.T) {
	t.Parallel()
	in, errs, err := source.Decode([]byte(`{"name":"s","email_path":"e","event_name":"x",
		"verification":{"type":"stripe","secret":"whsec_abcdefghijklmnop1234"}}`), source.NewInput())
	require.NoError(t, err)
	require.Empty(t, errs)
	require.True(t, in.SecretChanged)
	require.False(t, in.SecretGenerated)
	require.Equal(t, "whsec_…1234", source.SecretHint(in.Definition.Verification.Secret))
	require.Equal(t, "whsec_…", source.SecretHint("whsec_short"))

	// Same type, no secret: kept. Another type without one: generated.
	kept, errs, err := source.Decode([]byte(`{"verification":{"type":"stripe"}}`), in)
	require.NoError(t, err)
	require.Empty(t, errs)
	require.Equal(t, "whsec_abcdefghijklmnop1234", kept.Definition.Verification.Secret)
	gen, errs, err := source.Decode([]byte(`{"verification":{"type":"hmac_sha256","header":"X-Sig"}}`), in)
	require.NoError(t, err)
	require.Empty(t, errs)
	require.True(t, gen.SecretGenerated)
	require.NotEqual(t, in.Definition.Verification.Secret, gen.Definition.Verification.Secret)
	none, errs, err := source.Decode([]byte(`{"verification":null}`), in)
	require.NoError(t, err)
	require.Empty(t, errs)
	require.Equal(t, source.Verification{Type: source.VerifyNone}, none.Definition.Verification)
}

func TestVerifyStandardWebhooksAcceptsAnyOfSeveralSignatures(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	v := source.Verification{Type: source.VerifyStandardWebhooks, Secret: "whsec_" + base64.StdEncoding.EncodeToString(key)}
	body := []byte(`{"a":1}`)
	now := time.Unix(1_772_000_000, 0)
	m := hmac.New(sha256.New, key)
	m.Write([]byte("msg_1.1772000000."))
	m.Write(body)
	good := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", "1772000000")
	h.Set("webhook-signature", "v1,AAAA v2,zzz "+good)
	require.NoError(t, v.Verify(h, body, now))
	require.NoError(t, v.Verify(h, body, now.Add(4*time.Minute)))
	require.ErrorIs(t, v.Verify(h, body, now.Add(6*time.Minute)), source.ErrSignature)
	h.Set("webhook-signature", "v1,AAAA")
	require.ErrorIs(t, v.Verify(h, body, now), source.ErrSignature)
	// An unsecured source checks nothing.
	require.NoError(t, source.Verification{Type: source.VerifyNone}.Verify(http.Header{}, body, now))
}

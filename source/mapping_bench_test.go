package source_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/signalbox/signalbox/source"
)

// benchPayload is a Stripe event of the usual size (about 1.3 KB).
var benchPayload = []byte(`{"id":"evt_1PQ2w3E4r5T6y7U8i9O0","object":"event","api_version":"2024-06-20","created":1717000000,
"data":{"object":{"id":"sub_1PQ2w3E4r5T6y7U8","object":"subscription","application":null,"billing_cycle_anchor":1717000000,
"cancel_at_period_end":false,"collection_method":"charge_automatically","created":1717000000,"currency":"usd",
"current_period_end":1719592000,"current_period_start":1717000000,"customer":"cus_Q2w3E4r5T6y7","customer_email":"ada@example.com",
"customer_name":"Ada Lovelace","days_until_due":null,"default_payment_method":"pm_1PQ2w3E4r5T6y7U8","description":null,
"items":{"object":"list","data":[{"id":"si_Q2w3E4","object":"subscription_item","created":1717000000,"metadata":{},
"price":{"id":"price_1PQ2w3","object":"price","active":true,"billing_scheme":"per_unit","currency":"usd","product":"prod_Q2w3E4",
"recurring":{"interval":"month","interval_count":1,"usage_type":"licensed"},"unit_amount":2000,"unit_amount_decimal":"2000"},
"quantity":1}],"has_more":false,"total_count":1,"url":"/v1/subscription_items?subscription=sub_1PQ2w3E4r5T6y7U8"},
"latest_invoice":"in_1PQ2w3E4r5T6y7U8","livemode":false,"metadata":{"plan":"pro"},"status":"active"}},
"livemode":false,"pending_webhooks":1,"request":{"id":"req_Q2w3E4r5T6y7","idempotency_key":"8c1f6a3e-2b4d-4e6f-9a1b-3c5d7e9f1a2b"},
"type":"customer.subscription.created"}`)

// BenchmarkMap maps the payload as a Stripe source does.
func BenchmarkMap(b *testing.B) {
	def := source.Definition{EmailPath: "data.object.customer_email", EventNamePath: "type", PropertiesPath: "data.object",
		ExternalIDPath: "id", CreateIfMissing: true}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, reason := def.Map(benchPayload, now); reason != "" {
			b.Fatal(reason)
		}
	}
}

// BenchmarkPathsGJSON and BenchmarkPathsDecoded compare reading three
// paths with gjson against decoding the payload into maps, the choice the
// README's dependency table reports.
func BenchmarkPathsGJSON(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if !gjson.ValidBytes(benchPayload) {
			b.Fatal("invalid")
		}
		_ = gjson.GetBytes(benchPayload, "data.object.customer_email")
		_ = gjson.GetBytes(benchPayload, "type")
		_ = gjson.GetBytes(benchPayload, "id")
	}
}

func BenchmarkPathsDecoded(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]any
		if err := json.Unmarshal(benchPayload, &m); err != nil {
			b.Fatal(err)
		}
		_ = m["data"].(map[string]any)["object"].(map[string]any)["customer_email"]
		_, _ = m["type"], m["id"]
	}
}

func BenchmarkValidGJSON(b *testing.B) {
	for b.Loop() {
		_ = gjson.ValidBytes(benchPayload)
	}
}

func BenchmarkValidStdlib(b *testing.B) {
	for b.Loop() {
		_ = json.Valid(benchPayload)
	}
}

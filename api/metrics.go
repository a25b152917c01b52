package api

import (
	"go.opentelemetry.io/otel/metric"
)

// serverMetrics are the API's own counters, beside the HTTP metrics that
// otelgin records.
type serverMetrics struct {
	events metric.Int64Counter
	// deliveries counts payloads posted to inbound sources, by status.
	deliveries metric.Int64Counter
}

func newServerMetrics(mp metric.MeterProvider) serverMetrics {
	m := mp.Meter("github.com/signalbox/signalbox/api")
	events, _ := m.Int64Counter("signalbox.events.ingested",
		metric.WithDescription("Events received, by outcome: recorded, duplicate, invalid, quota_exceeded, contact_not_found."))
	deliveries, _ := m.Int64Counter("signalbox.source.deliveries",
		metric.WithDescription("Payloads posted to inbound sources, by status: accepted, duplicate, skipped, rejected."))
	return serverMetrics{events: events, deliveries: deliveries}
}

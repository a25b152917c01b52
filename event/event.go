// Package event defines an event as automations see it: recorded by the
// record path, carried in an enrollment's start and signals, and read by the
// enrollment's activities and conditions. It is one type on every side, so
// a renamed field fails to compile instead of decoding empty.
package event

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Event is a recorded event as automations see it.
type Event struct {
	ID         uuid.UUID       `json:"id"`
	Name       string          `json:"name"`
	Properties json.RawMessage `json:"properties"`
	OccurredAt time.Time       `json:"occurred_at"`
	// Depth counts the emit_event steps that led to this event.
	Depth int `json:"depth,omitempty"`
	// ReceivedAt is when the event was recorded, on PostgreSQL's clock;
	// waits open their windows at it. Events recorded in one transaction
	// share it, and their ids follow their order in the request. It is
	// absent in enrollments started before it was carried.
	ReceivedAt time.Time `json:"received_at,omitzero"`
}

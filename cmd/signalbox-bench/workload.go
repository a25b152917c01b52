package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/signalbox/signalbox/store"
)

// templateCount is how many distinct events the workload cycles through.
const templateCount = 1 << 14

// eventTemplate is one event of the workload, as the API receives it and as
// the baseline writes it.
type eventTemplate struct {
	email     string
	contactID uuid.UUID
	name      string
	props     json.RawMessage
	// body is the single-event request.
	body []byte
}

// workload is the fixed, seeded set of events both sides send.
type workload struct {
	workspaceID uuid.UUID
	events      []eventTemplate
	// batches are request bodies of batchSize consecutive templates each.
	batches   [][]byte
	batchSize int
}

// newWorkload makes the events from a fixed seed, spread uniformly over the
// contacts, with small realistic properties.
func newWorkload(contacts, batchSize int) *workload {
	r := rand.New(rand.NewPCG(20240917, 1))
	w := &workload{batchSize: batchSize, events: make([]eventTemplate, templateCount)}
	for i := range w.events {
		name, props := randomEvent(r)
		email := contactEmail(r.IntN(contacts))
		body, _ := json.Marshal(struct {
			Name       string          `json:"name"`
			Email      string          `json:"email"`
			Properties json.RawMessage `json:"properties"`
		}{name, email, props})
		w.events[i] = eventTemplate{email: email, name: name, props: props, body: body}
	}
	for start := 0; start+batchSize <= len(w.events); start += batchSize {
		var b bytes.Buffer
		b.WriteString(`{"events":[`)
		for i, e := range w.events[start : start+batchSize] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(e.body)
		}
		b.WriteString(`]}`)
		w.batches = append(w.batches, b.Bytes())
	}
	return w
}

// workloadNames are the event names randomEvent sends.
var workloadNames = []string{"purchase.completed", "page.viewed", "cart.updated", "signup.completed"}

// randomEvent returns one of a few event shapes with varying values.
func randomEvent(r *rand.Rand) (string, json.RawMessage) {
	var name, props string
	switch n := r.IntN(10); {
	case n < 4:
		name = "purchase.completed"
		props = fmt.Sprintf(`{"amount":%d.%d,"currency":"EUR","sku":"A-%d","items":[%d,%d]}`,
			r.IntN(500), r.IntN(10), r.IntN(100), r.IntN(9)+1, r.IntN(9)+1)
	case n < 7:
		name = "page.viewed"
		props = fmt.Sprintf(`{"path":"/docs/%d","referrer":"https://example.com/blog/%d"}`, r.IntN(200), r.IntN(50))
	case n < 9:
		name = "cart.updated"
		props = fmt.Sprintf(`{"items":%d,"total":%d.%d}`, r.IntN(10)+1, r.IntN(900), r.IntN(100))
	default:
		name = "signup.completed"
		props = fmt.Sprintf(`{"plan":"growth","source":"ads","campaign":"c-%d"}`, r.IntN(30))
	}
	return name, json.RawMessage(props)
}

// contactEmail names contact i.
func contactEmail(i int) string { return fmt.Sprintf("user%d@bench.test", i) }

// contactBatches are the bodies that create the contacts through the API.
func contactBatches(contacts int) [][]byte {
	var out [][]byte
	for start := 0; start < contacts; start += 1000 {
		var b bytes.Buffer
		b.WriteString(`{"events":[`)
		for i := start; i < min(start+1000, contacts); i++ {
			if i > start {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"name":"contact.imported","email":%q,"create_if_missing":true}`, contactEmail(i))
		}
		b.WriteString(`]}`)
		out = append(out, b.Bytes())
	}
	return out
}

// resolve fills in the contact ids the baseline writes.
func (w *workload) resolve(workspaceID uuid.UUID, ids map[string]uuid.UUID) error {
	w.workspaceID = workspaceID
	for i := range w.events {
		id, ok := ids[w.events[i].email]
		if !ok {
			return fmt.Errorf("contact %s was not created", w.events[i].email)
		}
		w.events[i].contactID = id
	}
	return nil
}

// event returns template seq, cycling.
func (w *workload) event(seq int64) *eventTemplate { return &w.events[seq%int64(len(w.events))] }

// batch returns batch body seq, cycling, and the index of its first event.
func (w *workload) batch(seq int64) ([]byte, int) {
	i := int(seq % int64(len(w.batches)))
	return w.batches[i], i * w.batchSize
}

// row is template seq as a bench_events row with a fresh id, received now,
// exactly as the record path builds it.
func (w *workload) row(e *eventTemplate, now time.Time) []any {
	return []any{store.NewID(), w.workspaceID, e.contactID, e.name, e.props, nil, nil, nil, now, now}
}

// eventColumns are the columns both sides write.
var eventColumns = []string{"id", "workspace_id", "contact_id", "name", "properties", "external_id",
	"goal_type", "goal_value", "occurred_at", "received_at"}

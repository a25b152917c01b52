package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Delivery statuses: what became of a payload a source received.
const (
	// DeliveryAccepted went through the record path (a duplicate too).
	DeliveryAccepted = "accepted"
	// DeliverySkipped could not be mapped to an event, or the record path
	// refused its event; the reason says which.
	DeliverySkipped = "skipped"
	// DeliveryRejected failed the source's signature check.
	DeliveryRejected = "rejected"
)

// DeliveryInput is a payload a source received, recorded with the request
// that carries its event (or, for a payload that made none, alone) in the
// same transaction and by the statement that counts usage.
type DeliveryInput struct {
	SourceID uuid.UUID
	ID       uuid.UUID
	// Status and Reason are set when the payload made no event (skipped
	// or rejected before the record path); otherwise the outcome of the
	// request's one event decides them (DeliveryOutcome).
	Status string
	Reason string
	// ReplayOf names the delivery this one replays, if any.
	ReplayOf uuid.UUID
	// Payload is the body as received.
	Payload []byte
}

// Delivery is a kept DeliveryInput.
type Delivery struct {
	ID         uuid.UUID
	SourceID   uuid.UUID
	ReceivedAt time.Time
	Status     string
	Reason     *string
	EventID    *uuid.UUID
	Duplicate  bool
	ReplayOf   *uuid.UUID
	Payload    []byte
}

// DeliveryOutcome decides what became of a delivery from its request's
// results: its preset status when it carried no event, skipped with the
// item's error as the reason when the record path refused the event (an
// unknown contact, an external_id of another event, or any refusal a later
// check adds), accepted otherwise.
func DeliveryOutcome(d *DeliveryInput, results []EventResult) (status, reason string, eventID uuid.UUID, duplicate bool) {
	if d.Status != "" || len(results) == 0 {
		status = d.Status
		if status == "" {
			status = DeliverySkipped
		}
		return status, d.Reason, uuid.Nil, false
	}
	r := results[0]
	if r.Err != nil {
		return DeliverySkipped, deliveryReason(r.Err), uuid.Nil, false
	}
	return DeliveryAccepted, "", r.EventID, r.Duplicate
}

// deliveryReason says why the record path refused a delivery's event.
func deliveryReason(err error) string {
	switch {
	case errors.Is(err, ErrContactNotFound):
		return "contact_not_found: no contact has this email and the source's create_if_missing is false"
	case errors.Is(err, ErrExternalIDConflict):
		return "external_id_conflict: the external id already names an event of another contact or another name"
	case errors.Is(err, ErrUndeclaredEvent):
		return "undeclared_event: the event name is not declared and the workspace refuses undeclared events"
	}
	var se *SchemaError
	if errors.As(err, &se) {
		var b strings.Builder
		fmt.Fprintf(&b, "schema_violation: %s", se.Error())
		for i, v := range se.Violations {
			if i == 5 {
				fmt.Fprintf(&b, "; and %d more", len(se.Violations)-i)
				break
			}
			fmt.Fprintf(&b, "; %s (%s): %s", v.Pointer, v.Keyword, v.Detail)
		}
		return b.String()
	}
	return "refused: " + err.Error()
}

// deliveryCTE writes the group's deliveries beside the usage count (see
// countUsage), so they cost no statement of their own; its parameters,
// deliveryArgs, are numbered from first on.
func deliveryCTE(first int) string {
	return fmt.Sprintf(`, deliver AS (
			INSERT INTO source_deliveries (source_id, id, received_at, status, reason, event_id, duplicate, replay_of, payload)
			SELECT d.source_id, d.id, $%[9]d, d.status, d.reason, d.event_id, d.dup, d.replay_of, d.payload
			FROM unnest($%[1]d::uuid[], $%[2]d::uuid[], $%[3]d::text[], $%[4]d::text[], $%[5]d::uuid[], $%[6]d::bool[],
			            $%[7]d::uuid[], $%[8]d::bytea[])
			     AS d(source_id, id, status, reason, event_id, dup, replay_of, payload))`,
		first, first+1, first+2, first+3, first+4, first+5, first+6, first+7, first+8)
}

// deliveryArgs are deliveryCTE's parameters for the group's deliveries,
// received at at.
func deliveryArgs(reqs []*RecordRequest, out []RecordOutcome, at time.Time) []any {
	var (
		sources, ids    []uuid.UUID
		statuses        []string
		reasons         []*string
		events, replays []*uuid.UUID
		dups            []bool
		payloads        [][]byte
	)
	for ri, r := range reqs {
		d := r.Delivery
		if d == nil {
			continue
		}
		status, reason, event, dup := DeliveryOutcome(d, out[ri].Results)
		sources, ids = append(sources, d.SourceID), append(ids, d.ID)
		statuses, reasons = append(statuses, status), append(reasons, nullString(reason))
		events, dups = append(events, nullUUID(event)), append(dups, dup)
		replays, payloads = append(replays, nullUUID(d.ReplayOf)), append(payloads, d.Payload)
	}
	return []any{sources, ids, statuses, reasons, events, dups, replays, payloads, at}
}

// DeliveryFilter selects a source's deliveries.
type DeliveryFilter struct {
	// Status is accepted, skipped, rejected, or "" for all.
	Status string
	// Before is the cursor: only deliveries older than this id.
	Before uuid.UUID
	// Since hides deliveries received before it (past their retention).
	Since time.Time
	Limit int
}

const deliveryColumns = `d.id, d.source_id, d.received_at, d.status, d.reason, d.event_id, d.duplicate, d.replay_of, d.payload`

func scanDelivery(row pgx.Row) (Delivery, error) {
	var d Delivery
	err := row.Scan(&d.ID, &d.SourceID, &d.ReceivedAt, &d.Status, &d.Reason, &d.EventID, &d.Duplicate, &d.ReplayOf, &d.Payload)
	return d, notFound(err)
}

// ListDeliveries returns a source's deliveries, newest first, and whether
// more follow; ErrNotFound if the workspace has no such source.
func (s *Store) ListDeliveries(ctx context.Context, workspaceID, sourceID uuid.UUID, f DeliveryFilter) ([]Delivery, bool, error) {
	if _, err := s.GetSource(ctx, workspaceID, sourceID); err != nil {
		return nil, false, err
	}
	var before *uuid.UUID
	if f.Before != uuid.Nil {
		before = &f.Before
	}
	var status *string
	if f.Status != "" {
		status = &f.Status
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM source_deliveries d
		WHERE d.source_id = $1 AND ($2::uuid IS NULL OR d.id < $2) AND ($3::text IS NULL OR d.status = $3)
		  AND d.received_at >= $4
		ORDER BY d.id DESC LIMIT $5`, sourceID, before, status, f.Since, f.Limit+1)
	if err != nil {
		return nil, false, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) { return scanDelivery(r) })
	if err != nil {
		return nil, false, err
	}
	out, more := trimPage(out, f.Limit)
	return out, more, nil
}

// GetDelivery reads one delivery of one of the workspace's sources.
func (s *Store) GetDelivery(ctx context.Context, workspaceID, sourceID, id uuid.UUID) (Delivery, error) {
	return scanDelivery(s.pool.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM source_deliveries d
		JOIN sources s ON s.id = d.source_id
		WHERE d.source_id = $2 AND d.id = $3 AND s.workspace_id = $1 AND s.deleted_at IS NULL`, workspaceID, sourceID, id))
}

// deletedSourceGrace is how long a deleted source's row outlives its last
// delivery, so that a record transaction that read the source just before
// the deletion and commits after the sweep leaves no delivery behind.
const deletedSourceGrace = time.Hour

// PurgeDeliveries deletes up to limit deliveries that are older than
// retention, beyond the newest perSource of their source, or of a deleted
// source, oldest first; then the rows of deleted sources that have none
// left. Each source is one probe of the key index: the newest perSource
// entries are stepped over to find the bound, the expired ones are at the
// old end.
func (s *Store) PurgeDeliveries(ctx context.Context, retention time.Duration, perSource, limit int) (int64, error) {
	cut := v7Floor(s.now().Add(-retention))
	tag, err := s.pool.Exec(ctx, `WITH doomed AS (
			SELECT d.source_id, d.id FROM sources s
			LEFT JOIN LATERAL (SELECT y.id FROM source_deliveries y WHERE y.source_id = s.id
			                   ORDER BY y.id DESC OFFSET $2 LIMIT 1) b ON true
			CROSS JOIN LATERAL (SELECT x.source_id, x.id FROM source_deliveries x
			                    WHERE x.source_id = s.id AND (s.deleted_at IS NOT NULL OR x.id < $1 OR x.id <= b.id)
			                    ORDER BY x.id LIMIT $3) d
			LIMIT $3)
		DELETE FROM source_deliveries x USING doomed WHERE x.source_id = doomed.source_id AND x.id = doomed.id`,
		cut, perSource, limit)
	if err != nil {
		return 0, fmt.Errorf("purge deliveries: %w", err)
	}
	if n := tag.RowsAffected(); n >= int64(limit) {
		return n, nil
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM sources s WHERE s.deleted_at < now() - $1::interval
		AND NOT EXISTS (SELECT 1 FROM source_deliveries d WHERE d.source_id = s.id)`, deletedSourceGrace); err != nil {
		return tag.RowsAffected(), fmt.Errorf("purge deleted sources: %w", err)
	}
	return tag.RowsAffected(), nil
}

// v7Floor is the smallest UUIDv7 of t's millisecond: ids below it were
// made before t.
func v7Floor(t time.Time) uuid.UUID {
	var id uuid.UUID
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(max(t.UnixMilli(), 0)))
	copy(id[:6], ms[2:])
	id[6] = 0x70
	return id
}

// Package intent is the contract between the record path and the enrollment
// workflow. What the outbox holds for Temporal is the workflow's own input
// (Start), its signal (Signal) and the cancellation of an exit (Cancel),
// with the workflow ids that name enrollments: one set of types on both
// sides, so a renamed field fails to compile instead of decoding empty.
package intent

import (
	"github.com/google/uuid"

	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/event"
)

// Kinds of intent in the outbox.
const (
	KindStart    = "start"
	KindSignal   = "signal"
	KindCancel   = "cancel"
	KindBackfill = "backfill"
)

// WorkflowIDPrefix starts every enrollment's workflow id.
const WorkflowIDPrefix = "enrollment-"

// WorkflowID is the deterministic id of an enrollment's workflow; delivering
// a start twice finds the first.
func WorkflowID(enrollmentID uuid.UUID) string { return WorkflowIDPrefix + enrollmentID.String() }

// Start starts an enrollment: everything its workflow needs, fixed when the
// trigger event was recorded. It is the workflow's input.
type Start struct {
	EnrollmentID uuid.UUID `json:"enrollment_id"`
	WorkspaceID  uuid.UUID `json:"workspace_id"`
	AutomationID uuid.UUID `json:"automation_id"`
	Version      int       `json:"version"`
	ContactID    uuid.UUID `json:"contact_id"`
	// Definition is the automation at Version; edits make new versions and
	// never reach a running enrollment.
	Definition definition.Automation `json:"definition"`
	Trigger    event.Event           `json:"trigger"`
}

// Signal hands a waiting enrollment the event that resumed its wait step
// (the record path's won claim).
type Signal struct {
	EnrollmentID uuid.UUID   `json:"enrollment_id"`
	StepID       string      `json:"step_id"`
	Event        event.Event `json:"event"`
	// Events are, for a wait on several events, every event it matched
	// (for "all", one per awaited name; Event is the one that completed
	// it), in the order of their names.
	Events []event.Event `json:"events,omitempty"`
}

// Cancel ends an enrollment early: its exit event, or none when the
// enrollment ends for another reason (its contact was deleted).
type Cancel struct {
	EnrollmentID uuid.UUID  `json:"enrollment_id"`
	EventID      *uuid.UUID `json:"event_id"`
}

// BackfillWorkflowID is the deterministic id of a backfill's workflow.
func BackfillWorkflowID(backfillID uuid.UUID) string { return "backfill-" + backfillID.String() }

// Backfill starts a backfill: the workflow that runs an automation's
// trigger over events already recorded, page by page. It is the backfill
// workflow's input.
type Backfill struct {
	BackfillID  uuid.UUID `json:"backfill_id"`
	WorkspaceID uuid.UUID `json:"workspace_id"`
	// PageSize is how many events one page takes.
	PageSize int `json:"page_size"`
	// Rate is how many events a second it goes through, at most.
	Rate float64 `json:"rate"`
}

package ingest

import (
	"context"
	"fmt"

	"github.com/signalbox/signalbox/store"
)

// Checker applies the event catalog to a request's events in place (see
// catalog.Catalog.Check): schema version and violations, or the error
// that refuses an item. It runs in the caller's goroutine, before the
// request joins a group, so validating properties never holds up a
// committer.
type Checker interface {
	Check(ctx context.Context, req *store.RecordRequest) error
}

// checkCatalog runs the checker and says whether it refused every event of
// a request that needs no transaction to answer (no idempotency key to
// keep the answer under).
func checkCatalog(ctx context.Context, c Checker, req *store.RecordRequest) (bool, error) {
	if err := c.Check(ctx, req); err != nil {
		return false, fmt.Errorf("event catalog: %w", err)
	}
	// A request with an idempotency key keeps its answer, and one with an
	// inbound source's delivery keeps the delivery (skipped, with the
	// refusal as its reason), in a transaction.
	if req.IdempotencyKey != "" || req.Delivery != nil {
		return false, nil
	}
	for _, e := range req.Events {
		if e.Refused == nil {
			return false, nil
		}
	}
	return len(req.Events) > 0, nil
}

// refusedOutcome answers a request whose every event the catalog refused.
func refusedOutcome(req *store.RecordRequest) store.RecordOutcome {
	out := store.RecordOutcome{Results: make([]store.EventResult, len(req.Events))}
	for i, e := range req.Events {
		out.Results[i].Err = e.Refused
	}
	return out
}

package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// StatsQuery asks for one event name's chart.
type StatsQuery struct {
	Name     string
	Interval string
	// TZ names Loc; buckets are cached per zone name.
	TZ           string
	Loc          *time.Location
	Since, Until time.Time
}

// Bucket is one point of an event chart.
type Bucket struct {
	Start        time.Time `json:"start"`
	Count        int64     `json:"count"`
	Contacts     int64     `json:"contacts"`
	GoalValueSum float64   `json:"goal_value_sum"`
}

func bucketIndex(edges []time.Time, t time.Time) int {
	lo, hi := 0, len(edges)-2
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if edges[mid].After(t) {
			hi = mid - 1
		} else {
			lo = mid
		}
	}
	return lo
}

func allIndexes(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// roundGoal rounds a goal sum to the stored precision (four decimals),
// dropping the float noise of adding and subtracting rollups.
func roundGoal(v float64) float64 {
	r := math.Round(v*1e4) / 1e4
	if r == 0 {
		return 0
	}
	return r
}

// NameSeries is one event name's total and chart over a range.
type NameSeries struct {
	Name    string   `json:"name"`
	Count   int64    `json:"count"`
	Buckets []Bucket `json:"buckets"`
}

// BusiestEvents returns the workspace's limit busiest event names over the
// buckets covering [Since, Until), each with its chart.
func (s *Store) BusiestEvents(ctx context.Context, workspaceID uuid.UUID, q StatsQuery, limit int) ([]NameSeries, error) {
	edges, err := Bounds(q.Interval, q.Loc, q.Since, q.Until)
	if err != nil {
		return nil, err
	}
	n := len(edges) - 1
	// The ranking reads the daily rollups of every name (and the hours of
	// partial days); expired events are a correction far below ranking
	// precision except in ranges older than the retention, which the
	// charts below then count exactly.
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT name FROM event_rollups
		WHERE workspace_id = $1 AND hod = -1 AND day >= $2::date AND day <= $3::date AND events > 0`,
		workspaceID, edges[0].UTC().Format(time.DateOnly), edges[n].UTC().Format(time.DateOnly))
	if err != nil {
		return nil, fmt.Errorf("read event names: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read event names: %w", err)
	}
	var ranked []NameSeries
	for _, name := range names {
		nq := q
		nq.Name = name
		buckets, err := s.EventStats(ctx, workspaceID, nq)
		if err != nil {
			return nil, err
		}
		ns := NameSeries{Name: name, Buckets: buckets}
		for _, b := range buckets {
			ns.Count += b.Count
		}
		if ns.Count > 0 {
			ranked = append(ranked, ns)
		}
	}
	sortSeries(ranked)
	if len(ranked) > limit {
		ranked = ranked[:limit]
	}
	return ranked, nil
}

// FeedItem is one event of an event name's activity feed.
type FeedItem struct {
	ID           uuid.UUID       `json:"id"`
	Name         string          `json:"name"`
	ContactID    uuid.UUID       `json:"contact_id"`
	ContactEmail string          `json:"contact_email"`
	Properties   json.RawMessage `json:"properties"`
	GoalType     *string         `json:"goal_type"`
	GoalValue    *float64        `json:"goal_value"`
	OccurredAt   time.Time       `json:"occurred_at"`
	ReceivedAt   time.Time       `json:"received_at"`
}

// FeedQuery selects a page of a feed: older than Before, or newer than
// After (to poll), newest first either way.
type FeedQuery struct {
	Name   string
	Before *EventCursor
	After  *EventCursor
	Limit  int
}

// EventFeed returns live, unexpired events of one name newest first (by
// occurred_at, then id) with their contact's email, and whether more
// older ones follow.
func (s *Store) EventFeed(ctx context.Context, workspaceID uuid.UUID, q FeedQuery) ([]FeedItem, bool, error) {
	var (
		beforeAt, afterAt *time.Time
		beforeID, afterID *uuid.UUID
	)
	if q.Before != nil {
		beforeAt, beforeID = &q.Before.OccurredAt, &q.Before.ID
	}
	if q.After != nil {
		afterAt, afterID = &q.After.OccurredAt, &q.After.ID
	}
	rows, err := s.pool.Query(ctx, `SELECT e.id, e.name, e.contact_id, c.email, e.properties, e.goal_type,
			e.goal_value::float8, e.occurred_at, e.received_at
		FROM events e JOIN contacts c ON c.id = e.contact_id
		WHERE e.workspace_id = $1 AND e.name = $2 AND e.deleted_at IS NULL AND e.received_at > $3
		  AND ($4::timestamptz IS NULL OR (e.occurred_at, e.id) < ($4, $5::uuid))
		  AND ($6::timestamptz IS NULL OR (e.occurred_at, e.id) > ($6, $7::uuid))
		ORDER BY e.occurred_at DESC, e.id DESC LIMIT $8`,
		workspaceID, q.Name, s.cutoff(), beforeAt, beforeID, afterAt, afterID, q.Limit+1)
	if err != nil {
		return nil, false, err
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (FeedItem, error) {
		var f FeedItem
		err := r.Scan(&f.ID, &f.Name, &f.ContactID, &f.ContactEmail, &f.Properties, &f.GoalType, &f.GoalValue,
			&f.OccurredAt, &f.ReceivedAt)
		return f, err
	})
	if err != nil {
		return nil, false, err
	}
	items, more := trimPage(items, q.Limit)
	return items, more, nil
}

// TopContact is one of the contacts who performed an event most.
type TopContact struct {
	ContactID uuid.UUID `json:"contact_id"`
	Email     string    `json:"email"`
	Count     int64     `json:"count"`
	LastAt    time.Time `json:"last_at"`
}

// TopContacts returns the contacts with the most live, unexpired events of
// name in [since, until), most first (ties: the most recent first).
func (s *Store) TopContacts(ctx context.Context, workspaceID uuid.UUID, name string, since, until time.Time, limit int) ([]TopContact, error) {
	var out []TopContact
	err := s.inAggregateTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT t.contact_id, c.email, t.n, t.last_at FROM (
			SELECT contact_id, count(*) AS n, max(occurred_at) AS last_at FROM events
			WHERE workspace_id = $1 AND name = $2 AND occurred_at >= $3 AND occurred_at < $4
			  AND deleted_at IS NULL AND received_at > $5
			GROUP BY contact_id ORDER BY n DESC, last_at DESC, contact_id LIMIT $6) t
		JOIN contacts c ON c.id = t.contact_id ORDER BY t.n DESC, t.last_at DESC, t.contact_id`,
			workspaceID, name, since, until, s.cutoff(), limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (TopContact, error) {
			var t TopContact
			err := r.Scan(&t.ContactID, &t.Email, &t.Count, &t.LastAt)
			return t, err
		})
		return err
	})
	return out, err
}

// aggregateWorkMem is the work_mem of the queries that group a window's
// events by contact (top contacts, segment counts): at the default 4 MB,
// grouping 74,000 events of 52,000 contacts spilled to disk.
const aggregateWorkMem = "64MB"

// inAggregateTx runs fn in a read-only transaction with aggregateWorkMem,
// set in the same round trip as BEGIN.
func (s *Store) inAggregateTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{BeginQuery: "BEGIN READ ONLY; SET LOCAL work_mem = '" + aggregateWorkMem + "'"}, fn)
}

// sortSeries orders names busiest first, then by name.
func sortSeries(s []NameSeries) {
	slices.SortFunc(s, func(a, b NameSeries) int {
		if a.Count != b.Count {
			if a.Count > b.Count {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// GoalAggregate sums one goal type of a contact's live, unexpired events.
// Sum, Avg, Min and Max cover the events that carry a value; refunds are
// negative values.
type GoalAggregate struct {
	Count   int64     `json:"count"`
	Sum     float64   `json:"sum"`
	Avg     *float64  `json:"avg"`
	Min     *float64  `json:"min"`
	Max     *float64  `json:"max"`
	FirstAt time.Time `json:"first_at"`
	LastAt  time.Time `json:"last_at"`
}

// ContactGoals returns a contact's goal aggregates per goal type, read from
// its timeline, so they are exact after upserts, deletes and restores.
func (s *Store) ContactGoals(ctx context.Context, workspaceID, contactID uuid.UUID) (map[string]GoalAggregate, error) {
	rows, err := s.pool.Query(ctx, `SELECT goal_type, count(*), coalesce(sum(goal_value), 0)::float8,
			avg(goal_value)::float8, min(goal_value)::float8, max(goal_value)::float8, min(occurred_at), max(occurred_at)
		FROM events WHERE contact_id = $2 AND workspace_id = $1 AND goal_type IS NOT NULL
		  AND deleted_at IS NULL AND received_at > $3
		GROUP BY goal_type`, workspaceID, contactID, s.cutoff())
	if err != nil {
		return nil, fmt.Errorf("read goals: %w", err)
	}
	out := map[string]GoalAggregate{}
	var (
		t string
		g GoalAggregate
	)
	if _, err := pgx.ForEachRow(rows, []any{&t, &g.Count, &g.Sum, &g.Avg, &g.Min, &g.Max, &g.FirstAt, &g.LastAt}, func() error {
		v := g
		v.Sum = roundGoal(g.Sum)
		v.Avg, v.Min, v.Max = copyRounded(g.Avg), copyRounded(g.Min), copyRounded(g.Max)
		out[t] = v
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read goals: %w", err)
	}
	return out, nil
}

func copyRounded(p *float64) *float64 {
	if p == nil {
		return nil
	}
	v := roundGoal(*p)
	return &v
}

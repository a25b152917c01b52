package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// The current bucket of a chart changes with every event, so its distinct
// contacts cannot be cached whole as the older buckets' are. Counting them
// from all the bucket's events on every request costs as much as the
// bucket holds: a whole month of a busy name by the month's end. Instead
// a week's or a month's bucket is split at a recent whole UTC hour (stop, an hour behind the
// current one, so that late events of the last hour do not keep making the
// cache stale): the distinct contacts before stop are cached in
// event_contact_partials with the rollups' change counters over those hours
// (valid while the sum matches, as for event_contact_buckets), and each
// request reads only the events from stop on, counting those whose contact
// has no event before stop (one index probe each, through the contact's
// timeline). An hour later, or after a change before stop, the whole
// bucket is recounted once in one statement, which also renews the entry.

// splitLiveBuckets turns the split on; only a benchmark turns it off, to
// compare.
var splitLiveBuckets = true

// liveSplit is the current bucket [start, end) split at stop, with the
// rollup terms of [start, stop).
type liveSplit struct {
	start, stop, end time.Time
	terms            []rollupTerm
}

// splitLive says whether the current bucket [start, end) of a chart by
// interval is read in two parts at now, and where. Only weeks and months
// are: a day's part before the split is at most a day of events, and
// scanning them (in order, through the name index) costs about what a
// probe per event after the split into the contacts' timelines (in random
// order) does, measured on the segments benchmark's data. Nor is it split
// when the part before the split would be empty, or when the bucket could
// hold expired events not yet purged (only in ranges older than the
// retention), which the cached part would not see go.
func (s *Store) splitLive(interval string, start, end time.Time) (liveSplit, bool) {
	if !splitLiveBuckets || interval != IntervalWeek && interval != IntervalMonth {
		return liveSplit{}, false
	}
	stop := s.now().UTC().Truncate(time.Hour).Add(-time.Hour)
	if !stop.After(start) || !stop.Before(end) || start.Before(s.cutoff().Add(maxFuture)) {
		return liveSplit{}, false
	}
	return liveSplit{start: start, stop: stop, end: end, terms: rollupTerms(start, stop)}, true
}

// liveSplitParts are the chart statement's parts for a split current
// bucket ($11 its start, $12 its end, $13 the split, $14-$16 the rollup
// terms before the split): the cached entry ('p'), the change counters
// before the split now ('q'), and the distinct contacts after it that
// have no event before it ('l').
const liveSplitParts = `
		UNION ALL
		SELECT 'p', NULL, NULL, changes, contacts, NULL, stop FROM event_contact_partials
		WHERE workspace_id = $1 AND name = $2 AND bucket = $6 AND tz = $7 AND start = $11
		UNION ALL
		SELECT 'q', NULL, NULL, coalesce(sum(t.sign * r.changes), 0)::bigint, NULL, NULL, NULL
		FROM unnest($14::smallint[], $15::date[], $16::bigint[]) AS t(hod, day, sign)
		JOIN event_rollups r ON r.workspace_id = $1 AND r.name = $2 AND r.hod = t.hod AND r.day = t.day
		UNION ALL
		SELECT 'l', NULL, NULL, NULL, count(DISTINCT e.contact_id), NULL, NULL FROM events e
		LEFT JOIN LATERAL (SELECT 1 AS hit FROM events a
			WHERE a.contact_id = e.contact_id AND a.occurred_at >= $11 AND a.occurred_at < $13
			  AND a.workspace_id = $1 AND a.name = $2 AND a.deleted_at IS NULL AND a.received_at > $10
			LIMIT 1) before ON true
		WHERE e.workspace_id = $1 AND e.name = $2 AND e.occurred_at >= $13 AND e.occurred_at < $12
		  AND e.deleted_at IS NULL AND e.received_at > $10 AND before.hit IS NULL`

// args are the parts' arguments, $11 to $16.
func (sp liveSplit) args() []any {
	hods, days, signs := make([]int16, len(sp.terms)), make([]time.Time, len(sp.terms)), make([]int64, len(sp.terms))
	for i, t := range sp.terms {
		hods[i], days[i], signs[i] = t.hod, t.day, t.sign
	}
	return []any{sp.start, sp.end, sp.stop, hods, days, signs}
}

// partialEntry is a cached event_contact_partials row, with the change
// counters before its split as the chart's statement read them.
type partialEntry struct {
	found             bool
	stop              time.Time
	changes, contacts int64
	changesNow        int64
}

// fresh says the entry still counts the contacts before sp's split.
func (p partialEntry) fresh(sp liveSplit) bool {
	return p.found && p.stop.Equal(sp.stop) && p.changes == p.changesNow
}

// recountLive counts the current bucket's distinct contacts from all its
// events, and in the same statement (one snapshot: countRanges) those
// before the split and the change counters before it, which it keeps for
// the next requests. It reads the part before the split twice, once an hour
// or after a change before the split, rather than have a statement of its
// own.
func (s *Store) recountLive(ctx context.Context, ws uuid.UUID, q StatsQuery, sp liveSplit) (int64, error) {
	counts, err := s.countRanges(ctx, ws, q.Name, []countedRange{
		{start: sp.start, stop: sp.stop, terms: sp.terms}, {start: sp.start, stop: sp.end}})
	if err != nil {
		return 0, err
	}
	before := counts[0]
	_, err = s.pool.Exec(ctx, `INSERT INTO event_contact_partials AS p
			(workspace_id, name, bucket, tz, start, stop, changes, contacts)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (workspace_id, name, bucket, tz, start) DO UPDATE SET
			stop = excluded.stop, changes = excluded.changes, contacts = excluded.contacts, computed_at = now()
		WHERE (p.stop, p.changes) < (excluded.stop, excluded.changes)`,
		ws, q.Name, q.Interval, q.TZ, sp.start, sp.stop, before.changes, before.contacts)
	if err != nil {
		return 0, fmt.Errorf("keep the current bucket's count: %w", err)
	}
	return counts[1].contacts, nil
}

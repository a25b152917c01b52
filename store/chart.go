package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// EventStats returns the chart of one event name: every bucket covering
// [Since, Until), zero-filled, counting live, unexpired events by
// occurred_at.
//
// Counts and goal sums come from the rollups (exact: new events are added
// by the record path, every other change by triggers). Distinct contacts
// cannot be added up from rollups, so each bucket's count is computed from
// the events once and cached with the sum of the rollups' change counters
// over the bucket's hours at that moment: the counters only grow, so an
// entry whose sum still matches is still exact. The bucket holding now is
// always read from the events (it changes with every event). In the
// steady state a chart is one statement: the rollup rows it needs, the
// cache, the current bucket from the events, and the expired events not
// yet purged (taken out of the rollup sums). Stale older buckets cost a
// second statement, which computes them and their counters in one
// snapshot. Zones whose bucket edges fall off whole UTC hours are counted
// from the events alone.
func (s *Store) EventStats(ctx context.Context, workspaceID uuid.UUID, q StatsQuery) ([]Bucket, error) {
	edges, err := Bounds(q.Interval, q.Loc, q.Since, q.Until)
	if err != nil {
		return nil, err
	}
	n := len(edges) - 1
	out := make([]Bucket, n)
	for i := range out {
		out[i].Start = edges[i]
	}
	for _, e := range edges {
		if e.Unix()%3600 != 0 {
			return out, s.bucketsFromEvents(ctx, workspaceID, q.Name, edges, out, allIndexes(n))
		}
	}
	// The rollup rows the terms use: for each hour (or -1, the whole day)
	// the days from the first to the last term of it, so that a zone whose
	// days end at 22:00 UTC in summer and 23:00 in winter reads hour 22 of
	// summer days and hour 23 of winter days, not both of every day.
	terms := make([][]rollupTerm, n)
	var (
		hods           []int16
		fromDay, toDay []time.Time
	)
	for i := range out {
		terms[i] = rollupTerms(edges[i], edges[i+1])
		for _, t := range terms[i] {
			j := slices.Index(hods, t.hod)
			if j < 0 {
				hods, fromDay, toDay = append(hods, t.hod), append(fromDay, t.day), append(toDay, t.day)
				continue
			}
			if t.day.Before(fromDay[j]) {
				fromDay[j] = t.day
			}
			if t.day.After(toDay[j]) {
				toDay[j] = t.day
			}
		}
	}
	now := s.now()
	live := -1
	if !now.Before(edges[0]) && now.Before(edges[n]) {
		live = bucketIndex(edges, now)
	}
	liveStart, liveEnd := edges[0], edges[0]
	if live >= 0 {
		liveStart, liveEnd = edges[live], edges[live+1]
	}
	// Only the parts this chart needs, each a simple index scan; fewer
	// parts also plan faster.
	// The rollup rows come as they are, one per shard: adding the shards
	// up here costs less than PostgreSQL's sort and group.
	query := `SELECT 'r', r.hod, r.day, r.events, r.changes, r.goal_sum::float8, NULL::timestamptz
		FROM unnest($3::smallint[], $4::date[], $5::date[]) AS k(hod, from_day, to_day)
		JOIN event_rollups r ON r.workspace_id = $1 AND r.name = $2 AND r.hod = k.hod
		  AND r.day >= k.from_day AND r.day <= k.to_day
		UNION ALL
		SELECT 'c', NULL, NULL, changes, contacts, NULL, start FROM event_contact_buckets
		WHERE workspace_id = $1 AND name = $2 AND bucket = $6 AND tz = $7 AND start >= $8 AND start < $9`
	args := []any{workspaceID, q.Name, hods, fromDay, toDay, q.Interval, q.TZ, edges[0], edges[n], s.cutoff()}
	// An expired event was received before the cutoff, so it happened
	// before the cutoff plus the future an event may claim.
	if edges[0].Before(s.cutoff().Add(maxFuture)) {
		query += `
		UNION ALL
		SELECT 'x', NULL, NULL, NULL, NULL, goal_value::float8, occurred_at FROM events
		WHERE received_at <= $10 AND workspace_id = $1 AND name = $2 AND deleted_at IS NULL
		  AND occurred_at >= $8 AND occurred_at < $9`
	}
	var split liveSplit
	splitting := false
	if live >= 0 {
		split, splitting = s.splitLive(q.Interval, liveStart, liveEnd)
	}
	switch {
	case splitting:
		query += liveSplitParts
		args = append(args, split.args()...)
	case live >= 0:
		query += `
		UNION ALL
		SELECT 'l', NULL, NULL, NULL, count(DISTINCT contact_id), NULL, NULL FROM events
		WHERE workspace_id = $1 AND name = $2 AND occurred_at >= $11 AND occurred_at < $12
		  AND deleted_at IS NULL AND received_at > $10`
		args = append(args, liveStart, liveEnd)
	default:
		query += ` AND $10::timestamptz IS NOT NULL`
	}
	batch, rows, err := s.queryGeneric(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read chart: %w", err)
	}
	defer batch.Close()
	sums := make(map[rollupKey]rollupSum, len(out)*len(hods))
	cached := map[time.Time]cacheEntry{}
	forced := map[int]bool{}
	// Value types with a validity flag rather than pointers: the chart
	// reads a few hundred rows per request, and pgx scans these without an
	// allocation per column.
	var (
		kind    string
		hod     pgtype.Int2
		day     pgtype.Date
		a, b    pgtype.Int8
		f       pgtype.Float8
		at      pgtype.Timestamptz
		expired []struct {
			at   time.Time
			goal *float64
		}
		liveContacts int64
		partial      partialEntry
	)
	_, err = pgx.ForEachRow(rows, []any{&kind, &hod, &day, &a, &b, &f, &at}, func() error {
		switch kind {
		case "r":
			k := rollupKey{hod.Int16, dayNumber(day.Time)}
			r := sums[k]
			r.events, r.changes, r.goalSum = r.events+a.Int64, r.changes+b.Int64, r.goalSum+f.Float64
			sums[k] = r
		case "c":
			cached[at.Time.UTC()] = cacheEntry{start: at.Time, changes: a.Int64, contacts: b.Int64}
		case "x":
			x := struct {
				at   time.Time
				goal *float64
			}{at: at.Time}
			if f.Valid {
				goal := f.Float64
				x.goal = &goal
			}
			expired = append(expired, x)
		case "l":
			liveContacts = b.Int64
		case "p":
			partial.found, partial.changes, partial.contacts, partial.stop = true, a.Int64, b.Int64, at.Time
		case "q":
			partial.changesNow = a.Int64
		}
		return nil
	})
	if err == nil {
		err = batch.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("read chart: %w", err)
	}
	changes := make([]int64, n)
	for i := range out {
		r := bucketSum(sums, terms[i])
		out[i].Count, out[i].GoalValueSum, changes[i] = r.events, r.goalSum, r.changes
	}
	// Expired events stay in the rollups until the sweeper purges them
	// (which adjusts the rollups); until then they are taken out here and
	// their buckets are not served from the cache.
	for _, x := range expired {
		i := bucketIndex(edges, x.at)
		out[i].Count--
		if x.goal != nil {
			out[i].GoalValueSum -= *x.goal
		}
		forced[i] = true
	}
	var missing []int
	for i := range out {
		out[i].GoalValueSum = roundGoal(out[i].GoalValueSum)
		switch c, ok := cached[edges[i].UTC()]; {
		case i == live && splitting:
			switch {
			case out[i].Count == 0:
			case partial.fresh(split):
				out[i].Contacts = partial.contacts + liveContacts
			default:
				if out[i].Contacts, err = s.recountLive(ctx, workspaceID, q, split); err != nil {
					return nil, err
				}
			}
		case i == live:
			out[i].Contacts = liveContacts
		case out[i].Count == 0:
		case ok && c.changes == changes[i] && !forced[i]:
			out[i].Contacts = c.contacts
		default:
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	keep, err := s.staleBuckets(ctx, workspaceID, q.Name, edges, terms, out, missing)
	if err != nil {
		return nil, err
	}
	var kept []cacheEntry
	for _, e := range keep {
		if !forced[e.i] {
			kept = append(kept, e.cacheEntry)
		}
	}
	return out, s.keepContacts(ctx, workspaceID, q, kept)
}

// maxFuture bounds how far ahead of its receipt an event may say it
// happened (ingest.MaxFuture, with room).
const maxFuture = 2 * time.Hour

// cacheEntry is a distinct-contact count kept for a bucket.
type cacheEntry struct {
	start             time.Time
	changes, contacts int64
}

// rollupKey addresses the rollup rows of the charted name at one hour (or
// -1, the whole day) of one UTC day (dayNumber).
type rollupKey struct {
	hod int16
	day int32
}

// dayNumber numbers UTC days from the Unix epoch: a cheaper map key than
// a time.Time.
func dayNumber(t time.Time) int32 { return int32(t.Unix() / 86400) }

// rollupSum is what rollup rows add up to.
type rollupSum struct {
	events, changes int64
	goalSum         float64
}

// bucketSum adds up the rollup terms of a bucket.
func bucketSum(sums map[rollupKey]rollupSum, terms []rollupTerm) rollupSum {
	var r rollupSum
	for _, t := range terms {
		v := sums[rollupKey{t.hod, dayNumber(t.day)}]
		r.events += t.sign * v.events
		r.changes += t.sign * v.changes
		r.goalSum += float64(t.sign) * v.goalSum
	}
	return r
}

// countedRange is a time range counted from the events, with the rollup
// terms whose change counters are read beside it (none: not read).
type countedRange struct {
	start, stop time.Time
	terms       []rollupTerm
}

// rangeCount is what countRanges found for a range.
type rangeCount struct {
	events, contacts, changes int64
	goalSum                   float64
}

// countRanges counts each range's live, unexpired events, their distinct
// contacts and goal sum from the events, and, in the same statement (one
// snapshot), the rollups' change counters over its terms, which a cache
// keeps beside the counts.
func (s *Store) countRanges(ctx context.Context, ws uuid.UUID, name string, ranges []countedRange) ([]rangeCount, error) {
	var (
		starts, stops []time.Time
		ti            []int64
		thod          []int16
		tday          []time.Time
		tsign         []int64
	)
	for i, r := range ranges {
		starts, stops = append(starts, r.start), append(stops, r.stop)
		for _, t := range r.terms {
			ti, thod, tday, tsign = append(ti, int64(i+1)), append(thod, t.hod), append(tday, t.day), append(tsign, t.sign)
		}
	}
	rows, err := s.pool.Query(ctx, `WITH t AS (
			SELECT * FROM unnest($6::bigint[], $7::smallint[], $8::date[], $9::bigint[]) AS t(i, hod, day, sign)),
		v AS (SELECT t.i, sum(t.sign * r.changes)::bigint AS changes FROM t
			JOIN event_rollups r ON r.workspace_id = $3 AND r.name = $4 AND r.hod = t.hod AND r.day = t.day
			GROUP BY t.i)
		SELECT b.i, c.events, c.contacts, c.goal_sum, coalesce(v.changes, 0)
		FROM unnest($1::timestamptz[], $2::timestamptz[]) WITH ORDINALITY AS b(start, stop, i)
		CROSS JOIN LATERAL (SELECT count(*) AS events, count(DISTINCT contact_id) AS contacts,
			coalesce(sum(goal_value), 0)::float8 AS goal_sum
			FROM events e WHERE e.workspace_id = $3 AND e.name = $4 AND e.occurred_at >= b.start
			  AND e.occurred_at < b.stop AND e.deleted_at IS NULL AND e.received_at > $5) c
		LEFT JOIN v ON v.i = b.i`,
		starts, stops, ws, name, s.cutoff(), ti, thod, tday, tsign)
	if err != nil {
		return nil, fmt.Errorf("count from events: %w", err)
	}
	out := make([]rangeCount, len(ranges))
	var (
		pos int64
		c   rangeCount
	)
	_, err = pgx.ForEachRow(rows, []any{&pos, &c.events, &c.contacts, &c.goalSum, &c.changes}, func() error {
		out[pos-1] = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count from events: %w", err)
	}
	return out, nil
}

// staleBuckets computes the listed buckets from the events (countRanges)
// and returns their cache entries.
func (s *Store) staleBuckets(ctx context.Context, ws uuid.UUID, name string, edges []time.Time, terms [][]rollupTerm,
	out []Bucket, which []int) ([]struct {
	i int
	cacheEntry
}, error) {
	ranges := make([]countedRange, len(which))
	for n, i := range which {
		ranges[n] = countedRange{start: edges[i], stop: edges[i+1], terms: terms[i]}
	}
	counts, err := s.countRanges(ctx, ws, name, ranges)
	if err != nil {
		return nil, err
	}
	keep := make([]struct {
		i int
		cacheEntry
	}, len(which))
	for n, i := range which {
		c := counts[n]
		out[i].Count, out[i].Contacts, out[i].GoalValueSum = c.events, c.contacts, roundGoal(c.goalSum)
		keep[n].i, keep[n].cacheEntry = i, cacheEntry{start: edges[i], changes: c.changes, contacts: c.contacts}
	}
	return keep, nil
}

// keepContacts caches distinct-contact counts.
func (s *Store) keepContacts(ctx context.Context, ws uuid.UUID, q StatsQuery, keep []cacheEntry) error {
	if len(keep) == 0 {
		return nil
	}
	starts := make([]time.Time, len(keep))
	changes := make([]int64, len(keep))
	contacts := make([]int64, len(keep))
	for i, e := range keep {
		starts[i], changes[i], contacts[i] = e.start, e.changes, e.contacts
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO event_contact_buckets AS b
			(workspace_id, name, bucket, tz, start, changes, contacts)
		SELECT $1, $2, $3, $4, u.start, u.changes, u.contacts
		FROM unnest($5::timestamptz[], $6::bigint[], $7::bigint[]) AS u(start, changes, contacts)
		ON CONFLICT (workspace_id, name, bucket, tz, start) DO UPDATE SET
			changes = excluded.changes, contacts = excluded.contacts, computed_at = now()
		WHERE b.changes < excluded.changes`,
		ws, q.Name, q.Interval, q.TZ, starts, changes, contacts)
	if err != nil {
		return fmt.Errorf("keep contact counts: %w", err)
	}
	return nil
}

// bucketsFromEvents computes the listed buckets from the events table
// alone (zones off whole UTC hours).
func (s *Store) bucketsFromEvents(ctx context.Context, ws uuid.UUID, name string, edges []time.Time, out []Bucket, which []int) error {
	starts := make([]time.Time, len(which))
	ends := make([]time.Time, len(which))
	for n, i := range which {
		starts[n], ends[n] = edges[i], edges[i+1]
	}
	rows, err := s.pool.Query(ctx, `SELECT b.i, c.events, c.contacts, c.goal_sum FROM
		unnest($1::timestamptz[], $2::timestamptz[]) WITH ORDINALITY AS b(start, stop, i)
		CROSS JOIN LATERAL (SELECT count(*) AS events, count(DISTINCT contact_id) AS contacts,
			coalesce(sum(goal_value), 0)::float8 AS goal_sum
			FROM events e WHERE e.workspace_id = $3 AND e.name = $4 AND e.occurred_at >= b.start
			  AND e.occurred_at < b.stop AND e.deleted_at IS NULL AND e.received_at > $5) c`,
		starts, ends, ws, name, s.cutoff())
	if err != nil {
		return fmt.Errorf("count buckets: %w", err)
	}
	var (
		i                int64
		events, contacts int64
		goalSum          float64
	)
	_, err = pgx.ForEachRow(rows, []any{&i, &events, &contacts, &goalSum}, func() error {
		b := &out[which[i-1]]
		b.Count, b.Contacts, b.GoalValueSum = events, contacts, roundGoal(goalSum)
		return nil
	})
	if err != nil {
		return fmt.Errorf("count buckets: %w", err)
	}
	return nil
}

// ContactBucketMaxAge is how long a distinct-contact cache entry is kept
// without being recomputed. Entries are written only when a chart finds
// them stale, so one left alone this long belongs to a bucket nobody charts
// any more (a zone or an interval tried once, a name gone quiet) or to one
// whose events have all expired; one still charted is recounted once and
// kept again.
const ContactBucketMaxAge = 30 * 24 * time.Hour

// LivePartialMaxAge is how long a current bucket's cached part (see
// splitLive) is kept without being renewed: one still charted is renewed
// every hour, so one left a day belongs to a bucket that has ended or that
// nobody charts any more.
const LivePartialMaxAge = 24 * time.Hour

// PurgeContactBuckets drops, at most limit at a time from each table, the
// distinct-contact cache entries not recomputed for ContactBucketMaxAge and
// the current buckets' cached parts not renewed for LivePartialMaxAge, and
// returns how many it dropped; the sweeper calls it until that is less
// than limit.
func (s *Store) PurgeContactBuckets(ctx context.Context, limit int) (int64, error) {
	var dropped int64
	for _, p := range []struct {
		table string
		age   time.Duration
	}{{"event_contact_buckets", ContactBucketMaxAge}, {"event_contact_partials", LivePartialMaxAge}} {
		tag, err := s.pool.Exec(ctx, `DELETE FROM `+p.table+` WHERE ctid = ANY(ARRAY(
			SELECT ctid FROM `+p.table+` WHERE computed_at < $1 LIMIT $2))`, s.now().Add(-p.age), limit)
		if err != nil {
			return 0, fmt.Errorf("purge %s: %w", p.table, err)
		}
		dropped += tag.RowsAffected()
	}
	return dropped, nil
}

package store

import (
	"fmt"
	"time"
)

// Chart intervals: the width of one bucket of an event chart.
const (
	IntervalHour  = "hour"
	IntervalDay   = "day"
	IntervalWeek  = "week"
	IntervalMonth = "month"
)

// MaxBuckets bounds one chart: 90 days of hours fit, with room.
const MaxBuckets = 5000

// BucketStart returns the start of the bucket of t: a local hour, a local
// day, a week starting on Monday, or a month, in loc.
func BucketStart(t time.Time, interval string, loc *time.Location) time.Time {
	l := t.In(loc)
	switch interval {
	case IntervalHour:
		// In absolute time, so the repeated hour of a DST fall-back is two
		// buckets; a zone with a half-hour offset has half-past hours.
		_, off := l.Zone()
		shift := time.Duration(off) * time.Second
		return t.Add(shift).Truncate(time.Hour).Add(-shift).In(loc)
	case IntervalDay:
		return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)
	case IntervalWeek:
		back := (int(l.Weekday()) + 6) % 7
		return time.Date(l.Year(), l.Month(), l.Day()-back, 0, 0, 0, 0, loc)
	default:
		return time.Date(l.Year(), l.Month(), 1, 0, 0, 0, 0, loc)
	}
}

// nextBucket returns the start of the bucket after the one starting at b.
func nextBucket(b time.Time, interval string, loc *time.Location) time.Time {
	l := b.In(loc)
	switch interval {
	case IntervalHour:
		return BucketStart(b.Add(time.Hour), interval, loc)
	case IntervalDay:
		return time.Date(l.Year(), l.Month(), l.Day()+1, 0, 0, 0, 0, loc)
	case IntervalWeek:
		return time.Date(l.Year(), l.Month(), l.Day()+7, 0, 0, 0, 0, loc)
	default:
		return time.Date(l.Year(), l.Month()+1, 1, 0, 0, 0, 0, loc)
	}
}

// Bounds returns the edges of the buckets that cover [since, until): the
// first is the start of since's bucket, the last the end of the bucket
// holding the last instant before until; n buckets have n+1 edges.
func Bounds(interval string, loc *time.Location, since, until time.Time) ([]time.Time, error) {
	if !until.After(since) {
		return nil, fmt.Errorf("until must be after since")
	}
	edges := []time.Time{BucketStart(since, interval, loc)}
	for edges[len(edges)-1].Before(until) {
		if len(edges) > MaxBuckets {
			return nil, fmt.Errorf("the range holds more than %d %s buckets", MaxBuckets, interval)
		}
		next := nextBucket(edges[len(edges)-1], interval, loc)
		if !next.After(edges[len(edges)-1]) {
			// A zone whose midnight does not exist; step past it.
			next = nextBucket(edges[len(edges)-1].Add(2*time.Hour), interval, loc)
		}
		edges = append(edges, next)
	}
	return edges, nil
}

// rollupTerm is one rollup row counted into a bucket, added or subtracted.
type rollupTerm struct {
	day  time.Time // UTC midnight
	hod  int16     // 0-23, or -1 for the whole day
	sign int64
}

// rollupTerms decomposes [a, b), both on whole UTC hours, into whole UTC
// days and hours: a day mostly covered is the day less the hours outside.
func rollupTerms(a, b time.Time) []rollupTerm {
	var terms []rollupTerm
	a, b = a.UTC(), b.UTC()
	for d := a.Truncate(24 * time.Hour); d.Before(b); d = d.Add(24 * time.Hour) {
		end := d.Add(24 * time.Hour)
		h0, h1 := 0, 24
		if a.After(d) {
			h0 = int(a.Sub(d) / time.Hour)
		}
		if b.Before(end) {
			h1 = int(b.Sub(d) / time.Hour)
		}
		switch {
		case h0 == 0 && h1 == 24:
			terms = append(terms, rollupTerm{d, -1, 1})
		case h1-h0 > 12:
			terms = append(terms, rollupTerm{d, -1, 1})
			for h := 0; h < 24; h++ {
				if h < h0 || h >= h1 {
					terms = append(terms, rollupTerm{d, int16(h), -1})
				}
			}
		default:
			for h := h0; h < h1; h++ {
				terms = append(terms, rollupTerm{d, int16(h), 1})
			}
		}
	}
	return terms
}

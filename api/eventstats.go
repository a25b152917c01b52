package api

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/signalbox/signalbox/ingest"
	"github.com/signalbox/signalbox/store"
)

// Default ranges of a chart when since is not given, per interval.
var defaultChartRange = map[string]time.Duration{
	store.IntervalHour:  48 * time.Hour,
	store.IntervalDay:   30 * 24 * time.Hour,
	store.IntervalWeek:  12 * 7 * 24 * time.Hour,
	store.IntervalMonth: 365 * 24 * time.Hour,
}

// statsResponse answers GET /v1/event-types/{name}/stats.
type statsResponse struct {
	Name     string         `json:"name"`
	Interval string         `json:"interval"`
	TZ       string         `json:"tz"`
	Since    time.Time      `json:"since"`
	Until    time.Time      `json:"until"`
	Buckets  []store.Bucket `json:"buckets"`
}

// chartQuery reads interval, tz, since and until; since defaults to a range
// that suits the interval, until to now.
func (s *Server) chartQuery(q *query, defaultInterval string) store.StatsQuery {
	sq := store.StatsQuery{Interval: q.c.DefaultQuery("interval", defaultInterval), TZ: q.c.DefaultQuery("tz", "UTC")}
	if _, ok := defaultChartRange[sq.Interval]; !ok {
		q.fail("interval", "interval must be hour, day, week or month")
		sq.Interval = store.IntervalDay
	}
	loc, err := loadZone(sq.TZ)
	if err != nil || sq.TZ == "" || sq.TZ == "Local" {
		q.fail("tz", "tz must be an IANA time zone name such as Europe/Paris")
		loc = time.UTC
	}
	sq.Loc = loc
	sq.Since, sq.Until = q.time("since"), q.time("until")
	if sq.Until.IsZero() {
		sq.Until = s.now()
	}
	if sq.Since.IsZero() {
		sq.Since = sq.Until.Add(-defaultChartRange[sq.Interval])
	}
	if len(q.errs) == 0 {
		if !sq.Until.After(sq.Since) {
			q.fail("until", "until must be after since")
		} else if _, err := store.Bounds(sq.Interval, sq.Loc, sq.Since, sq.Until); err != nil {
			q.fail("since", err.Error()+"; shorten the range or widen the interval")
		}
	}
	return sq
}

// zones holds the time zones charts asked for: time.LoadLocation reads
// and parses the zone's file on every call (about 30 µs, a twentieth of a
// chart). Only names that loaded are kept, so it holds at most the IANA
// database's few hundred.
var zones sync.Map

// loadZone is time.LoadLocation, remembered.
func loadZone(name string) (*time.Location, error) {
	if loc, ok := zones.Load(name); ok {
		return loc.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	zones.Store(name, loc)
	return loc, nil
}

// checkName validates an event name taken from the path.
func checkName(name string) error {
	if name == "" {
		return notFound("event type")
	}
	if detail := ingest.CheckEventName(name); detail != "" {
		return invalid(ingest.FieldError{Field: "name", Code: ingest.CodeInvalid, Detail: detail})
	}
	return nil
}

// eventTypeStats answers GET /v1/event-types/{name}/stats.
func (s *Server) eventTypeStats(c *gin.Context, name string) {
	if err := checkName(name); err != nil {
		_ = c.Error(err)
		return
	}
	q := query{c: c}
	sq := s.chartQuery(&q, store.IntervalDay)
	if err := q.err(); err != nil {
		_ = c.Error(err)
		return
	}
	sq.Name = name
	buckets, err := s.store.EventStats(c.Request.Context(), who(c).WorkspaceID, sq)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusOK, statsResponse{Name: name, Interval: sq.Interval, TZ: sq.TZ, Since: sq.Since, Until: sq.Until,
		Buckets: buckets})
}

// feedPage is a feed listing: next_cursor pages to older events, and
// poll_cursor, given back as since, returns only newer ones.
type feedPage struct {
	Data       []store.FeedItem `json:"data"`
	NextCursor *string          `json:"next_cursor"`
	PollCursor *string          `json:"poll_cursor"`
}

// eventTypeFeed answers GET /v1/event-types/{name}/feed.
func (s *Server) eventTypeFeed(c *gin.Context, name string) {
	if err := checkName(name); err != nil {
		_ = c.Error(err)
		return
	}
	q := query{c: c}
	fq := store.FeedQuery{Name: name, Limit: q.limit(), Before: q.eventCursor()}
	if v := c.Query("since"); v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			// A time: everything that happened after it.
			fq.After = &store.EventCursor{OccurredAt: t, ID: maxUUID}
		} else {
			sq := query{c: c}
			fq.After = sq.cursorValue("since", v)
			q.errs = append(q.errs, sq.errs...)
		}
	}
	if err := q.err(); err != nil {
		_ = c.Error(err)
		return
	}
	items, more, err := s.store.EventFeed(c.Request.Context(), who(c).WorkspaceID, fq)
	if err != nil {
		_ = c.Error(err)
		return
	}
	if items == nil {
		items = []store.FeedItem{}
	}
	out := feedPage{Data: items}
	if more {
		last := items[len(items)-1]
		out.NextCursor = encodeEventCursor(&store.EventCursor{OccurredAt: last.OccurredAt, ID: last.ID})
	}
	switch {
	case len(items) > 0:
		out.PollCursor = encodeEventCursor(&store.EventCursor{OccurredAt: items[0].OccurredAt, ID: items[0].ID})
	case fq.After != nil:
		out.PollCursor = encodeEventCursor(fq.After)
	}
	c.JSON(http.StatusOK, out)
}

// topContactsResponse answers GET /v1/event-types/{name}/top-contacts.
type topContactsResponse struct {
	Name  string             `json:"name"`
	Since time.Time          `json:"since"`
	Until time.Time          `json:"until"`
	Data  []store.TopContact `json:"data"`
}

// eventTypeTopContacts answers GET /v1/event-types/{name}/top-contacts.
func (s *Server) eventTypeTopContacts(c *gin.Context, name string) {
	if err := checkName(name); err != nil {
		_ = c.Error(err)
		return
	}
	q := query{c: c}
	since, until := q.time("since"), q.time("until")
	limit := 10
	if c.Query("limit") != "" {
		limit = q.limit()
		if limit > 100 {
			q.fail("limit", "limit must be an integer from 1 to 100")
		}
	}
	if until.IsZero() {
		until = s.now()
	}
	if since.IsZero() {
		since = until.Add(-30 * 24 * time.Hour)
	}
	if len(q.errs) == 0 && !until.After(since) {
		q.fail("until", "until must be after since")
	}
	if err := q.err(); err != nil {
		_ = c.Error(err)
		return
	}
	top, err := s.store.TopContacts(c.Request.Context(), who(c).WorkspaceID, name, since, until, limit)
	if err != nil {
		_ = c.Error(err)
		return
	}
	if top == nil {
		top = []store.TopContact{}
	}
	c.JSON(http.StatusOK, topContactsResponse{Name: name, Since: since, Until: until, Data: top})
}

// eventsStatsResponse answers GET /v1/stats/events.
type eventsStatsResponse struct {
	Interval string             `json:"interval"`
	TZ       string             `json:"tz"`
	Since    time.Time          `json:"since"`
	Until    time.Time          `json:"until"`
	Events   []store.NameSeries `json:"events"`
}

// eventsStats answers GET /v1/stats/events: the busiest names and their series.
func (s *Server) eventsStats(c *gin.Context) {
	q := query{c: c}
	sq := s.chartQuery(&q, store.IntervalDay)
	limit := 20
	if c.Query("limit") != "" {
		limit = q.limit()
		if limit > 100 {
			q.fail("limit", "limit must be an integer from 1 to 100")
		}
	}
	if err := q.err(); err != nil {
		_ = c.Error(err)
		return
	}
	series, err := s.store.BusiestEvents(c.Request.Context(), who(c).WorkspaceID, sq, limit)
	if err != nil {
		_ = c.Error(err)
		return
	}
	if series == nil {
		series = []store.NameSeries{}
	}
	c.JSON(http.StatusOK, eventsStatsResponse{Interval: sq.Interval, TZ: sq.TZ, Since: sq.Since, Until: sq.Until, Events: series})
}

// routeAnalytics registers the event analytics endpoints: the per-name
// ones as suffixes of the catalog's GET /v1/event-types/*name catch-all
// (event names may hold "/"; see registerEventTypes).
func (s *Server) routeAnalytics(v1 *gin.RouterGroup) {
	s.eventTypeSubroutes["stats"] = s.eventTypeStats
	s.eventTypeSubroutes["feed"] = s.eventTypeFeed
	s.eventTypeSubroutes["top-contacts"] = s.eventTypeTopContacts
	v1.GET("/stats/events", s.eventsStats)
}

// maxUUID sorts after every id, so a cursor at a time with it excludes
// every event at that time.
var maxUUID = uuid.Max

// cursorValue decodes an event cursor given in another parameter than
// cursor (the feed's since).
func (q *query) cursorValue(field, v string) *store.EventCursor {
	raw, err := base64.RawURLEncoding.DecodeString(v)
	at, id, ok := strings.Cut(string(raw), "_")
	nanos, err2 := strconv.ParseInt(at, 10, 64)
	uid, err3 := uuid.Parse(id)
	if err != nil || !ok || err2 != nil || err3 != nil {
		q.fail(field, field+" must be an RFC 3339 timestamp or a poll_cursor this API returned")
		return nil
	}
	return &store.EventCursor{OccurredAt: time.Unix(0, nanos).UTC(), ID: uid}
}

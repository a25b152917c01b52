package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/signalbox/signalbox/api"
	"github.com/signalbox/signalbox/ingest"
	"github.com/signalbox/signalbox/store"
)

// env is what every phase uses.
type env struct {
	o       options
	pool    *pgxpool.Pool
	st      *store.Store
	ws      store.Workspace
	key     string
	url     string
	urlOff  string
	http    *http.Client
	now     time.Time
	names   []string
	weights []float64
}

func bench(ctx context.Context, serverURL string, o options) error {
	if o.reuse != "" {
		return benchOn(ctx, serverURL, o)
	}
	name, dbURL, err := store.CreateScratchDatabase(ctx, serverURL, "segbench_")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Printf("database: %s\n", name)
	} else {
		defer func() { _ = store.DropDatabase(serverURL, name) }()
	}
	st, err := store.Open(ctx, dbURL, store.Config{})
	if err != nil {
		return err
	}
	defer st.Close()
	ws, key, err := st.CreateWorkspace(ctx, "segbench", store.PlanEnterprise)
	if err != nil {
		return err
	}
	e := &env{o: o, pool: st.Pool(), st: st, ws: ws, key: key.Secret, now: time.Now().UTC()}
	e.nameShares()
	start := time.Now()
	if err := e.load(ctx); err != nil {
		return err
	}
	fmt.Printf("loaded %d contacts and %d events over %d days in %s (COPY, then RebuildRollups, VACUUM ANALYZE)\n",
		o.contacts, o.events, o.days, time.Since(start).Round(time.Second))
	return e.phases(ctx, dbURL)
}

// benchOn runs the phases on a database an earlier run kept (-keep), with
// a new API key of its workspace.
func benchOn(ctx context.Context, serverURL string, o options) error {
	dbURL, err := store.WithDatabase(serverURL, o.reuse)
	if err != nil {
		return err
	}
	if _, err := store.Migrate(ctx, dbURL); err != nil {
		return err
	}
	st, err := store.Open(ctx, dbURL, store.Config{})
	if err != nil {
		return err
	}
	defer st.Close()
	e := &env{o: o, pool: st.Pool(), st: st, now: time.Now().UTC()}
	if err := st.Pool().QueryRow(ctx, `SELECT id, name, plan FROM workspaces WHERE name = 'segbench'`).
		Scan(&e.ws.ID, &e.ws.Name, &e.ws.Plan); err != nil {
		return fmt.Errorf("the segbench workspace of %s: %w", o.reuse, err)
	}
	key, err := st.CreateAPIKey(ctx, e.ws.ID)
	if err != nil {
		return err
	}
	e.key = key.Secret
	e.nameShares()
	return e.phases(ctx, dbURL)
}

// phases serves the API on the loaded database and runs the phases.
func (e *env) phases(ctx context.Context, dbURL string) error {
	o, st := e.o, e.st

	rec := ingest.NewRecorder(st, ingest.RecorderConfig{})
	defer rec.Close()
	srv := httptest.NewServer(api.New(api.Config{Store: st, Recorder: rec, Logger: slog.New(slog.DiscardHandler)}).Handler())
	defer srv.Close()
	e.url = srv.URL
	// A second API on the same database whose store leaves new events out
	// of the rollups: the ingest phase's baseline.
	stOff, err := store.Open(ctx, dbURL, store.Config{SkipRollups: true})
	if err != nil {
		return err
	}
	defer stOff.Close()
	recOff := ingest.NewRecorder(stOff, ingest.RecorderConfig{})
	defer recOff.Close()
	srvOff := httptest.NewServer(api.New(api.Config{Store: stOff, Recorder: recOff, Logger: slog.New(slog.DiscardHandler)}).Handler())
	defer srvOff.Close()
	e.urlOff = srvOff.URL
	e.http = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: time.Minute}

	for _, p := range strings.Split(o.phases, ",") {
		var err error
		switch strings.TrimSpace(p) {
		case "chart":
			if err = e.chart(ctx); err == nil {
				err = e.longCharts(ctx)
			}
		case "segment":
			err = e.segment(ctx)
		case "top":
			err = e.top(ctx)
		case "ingest":
			err = e.ingest(ctx)
		default:
			err = fmt.Errorf("unknown phase %q", p)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// nameShares names the -names event names and gives each its Zipf weight
// (the i-th busiest 1/i).
func (e *env) nameShares() {
	for i := range e.o.names {
		e.names = append(e.names, fmt.Sprintf("event.%02d", i+1))
		e.weights = append(e.weights, 1/float64(i+1))
	}
}

// meanName is the name whose Zipf share is nearest 1/names.
func (e *env) meanName() string {
	total := 0.0
	for _, w := range e.weights {
		total += w
	}
	best := 0
	for i, w := range e.weights {
		if math.Abs(w/total-1/float64(len(e.weights))) < math.Abs(e.weights[best]/total-1/float64(len(e.weights))) {
			best = i
		}
	}
	return e.names[best]
}

// pickName draws a name by its Zipf weight.
func (e *env) pickName(r *rand.Rand) string {
	total := 0.0
	for _, w := range e.weights {
		total += w
	}
	x := r.Float64() * total
	for i, w := range e.weights {
		if x < w {
			return e.names[i]
		}
		x -= w
	}
	return e.names[len(e.names)-1]
}

var goalTypes = []string{"subscription", "lead", "signup", "booking", "trial", "other"}

// load copies the contacts and events in.
func (e *env) load(ctx context.Context) error {
	r := rand.New(rand.NewPCG(1, 2))
	ids := make([]uuid.UUID, e.o.contacts)
	rows := make([][]any, e.o.contacts)
	for i := range ids {
		ids[i] = store.NewID()
		rows[i] = []any{ids[i], e.ws.ID, fmt.Sprintf("c%d@bench.example", i)}
	}
	if _, err := e.pool.CopyFrom(ctx, pgx.Identifier{"contacts"}, []string{"id", "workspace_id", "email"}, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("copy contacts: %w", err)
	}
	span := time.Duration(e.o.days) * 24 * time.Hour
	first := e.now.Add(-span)
	step := span / time.Duration(e.o.events)
	const batch = 100_000
	for off := 0; off < e.o.events; off += batch {
		n := min(batch, e.o.events-off)
		i := 0
		src := pgx.CopyFromFunc(func() ([]any, error) {
			if i == n {
				return nil, nil
			}
			k := off + i
			i++
			at := first.Add(time.Duration(k) * step)
			var goalType, goalValue any
			if r.IntN(5) == 0 {
				if r.IntN(5) < 3 {
					v := 5 + r.Float64()*145
					if r.IntN(20) == 0 {
						v = -(5 + r.Float64()*95)
					}
					goalType, goalValue = "purchase", fmt.Sprintf("%.2f", v)
				} else {
					goalType, goalValue = goalTypes[r.IntN(len(goalTypes))], fmt.Sprintf("%.2f", r.Float64()*50)
				}
			}
			return []any{store.NewID(), e.ws.ID, ids[r.IntN(len(ids))], e.pickName(r),
				fmt.Sprintf(`{"n":%d,"plan":"%s"}`, r.IntN(100), []string{"free", "pro", "team"}[r.IntN(3)]),
				goalType, goalValue, at, at.Add(time.Second)}, nil
		})
		_, err := e.pool.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"id", "workspace_id", "contact_id", "name",
			"properties", "goal_type", "goal_value", "occurred_at", "received_at"}, src)
		if err != nil {
			return fmt.Errorf("copy events: %w", err)
		}
	}
	if err := e.st.RebuildRollups(ctx, e.ws.ID); err != nil {
		return err
	}
	for _, t := range []string{"contacts", "events", "event_rollups"} {
		if _, err := e.pool.Exec(ctx, "VACUUM ANALYZE "+t); err != nil {
			return fmt.Errorf("vacuum: %w", err)
		}
	}
	return nil
}

// get sends an authenticated GET and decodes the answer into out.
func (e *env) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.url+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+e.key)
	resp, err := e.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(body, out)
}

// post sends an authenticated POST with a JSON body and returns the status.
func (e *env) post(ctx context.Context, path string, body any, out any) (int, error) {
	return e.postTo(ctx, e.url, path, body, out)
}

// postTo is post to the API at base.
func (e *env) postTo(ctx context.Context, base, path string, body any, out any) (int, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(raw))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+e.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode/100 == 2 {
		err = json.Unmarshal(b, out)
	}
	return resp.StatusCode, err
}

// timed runs fn and returns how long it took.
func timed(fn func() error) (time.Duration, error) {
	start := time.Now()
	err := fn()
	return time.Since(start), err
}

// p50 is the median of ds.
func p50(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

type statsAnswer struct {
	Buckets []store.Bucket `json:"buckets"`
}

// chart measures the 90-day daily chart of the busiest name, of the name
// whose share is nearest the mean (the volume every name would have if
// they were equally busy: events / names) and of the median name.
func (e *env) chart(ctx context.Context) error {
	since, until := e.now.Add(-90*24*time.Hour), e.now.Add(time.Hour)
	for _, name := range []string{e.names[0], e.meanName(), e.names[len(e.names)/2-1]} {
		var total int64
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE workspace_id = $1 AND name = $2`, e.ws.ID, name).Scan(&total); err != nil {
			return err
		}
		for _, tz := range []string{"UTC", "Europe/Paris"} {
			path := "/v1/event-types/" + name + "/stats?interval=day&tz=" + url.QueryEscape(tz) + "&since=" +
				url.QueryEscape(since.Format(time.RFC3339)) + "&until=" + url.QueryEscape(until.Format(time.RFC3339))
			var first statsAnswer
			cold, err := timed(func() error { return e.get(ctx, path, &first) })
			if err != nil {
				return err
			}
			if err := e.checkChart(ctx, name, tz, first.Buckets); err != nil {
				return err
			}
			loc, err := time.LoadLocation(tz)
			if err != nil {
				return err
			}
			t, err := e.liveRounds(ctx, name, "c",
				func() error { return e.get(ctx, path, nil) },
				func() error {
					_, err := e.st.EventStats(ctx, e.ws.ID, store.StatsQuery{Name: name, Interval: store.IntervalDay, TZ: tz, Loc: loc, Since: since, Until: until})
					return err
				},
				func() error { return e.baselineChart(ctx, name, since, until) },
				func() error { return e.baselineChartSameMeaning(ctx, name, store.IntervalDay, tz, since, until) })
			if err != nil {
				return err
			}
			api, direct, base, full := t[0], t[1], t[2], t[3]
			fmt.Printf("chart %s (%d events) tz=%s, 90 days by day: API p50 %s (cold %s; store.EventStats alone %s); "+
				"count(*) GROUP BY p50 %s: %.1fx faster; GROUP BY of the same meaning p50 %s: %.1fx faster\n",
				name, total, tz, ms(p50(api)), ms(cold), ms(p50(direct)),
				ms(p50(base)), float64(p50(base))/float64(p50(api)), ms(p50(full)), float64(p50(full))/float64(p50(api)))
		}
	}
	return nil
}

// longCharts measures the weekly and monthly charts of the busiest name
// over the whole data set, whose current bucket holds days of its events,
// against the GROUP BY of the same meaning; an event is recorded before
// each round, as for the daily chart.
func (e *env) longCharts(ctx context.Context) error {
	name := e.names[0]
	since, until := e.now.Add(-time.Duration(e.o.days)*24*time.Hour), e.now.Add(time.Hour)
	for _, interval := range []string{store.IntervalWeek, store.IntervalMonth} {
		path := "/v1/event-types/" + name + "/stats?interval=" + interval + "&since=" + url.QueryEscape(since.Format(time.RFC3339)) +
			"&until=" + url.QueryEscape(until.Format(time.RFC3339))
		t, err := e.liveRounds(ctx, name, "w-"+interval,
			func() error { return e.get(ctx, path, nil) },
			func() error { return e.baselineChartSameMeaning(ctx, name, interval, "UTC", since, until) })
		if err != nil {
			return err
		}
		api, full := t[0], t[1]
		fmt.Printf("chart %s by %s since %s: API p50 %s; GROUP BY of the same meaning p50 %s: %.1fx faster\n",
			name, interval, since.Format(time.DateOnly), ms(p50(api)), ms(p50(full)), float64(p50(full))/float64(p50(api)))
	}
	return nil
}

// liveRounds runs e.o.rounds rounds, each recording an event of name
// first (the current bucket is then stale, as on a live dashboard) and
// then timing each of fns in turn; it returns each fn's times.
func (e *env) liveRounds(ctx context.Context, name, emailPrefix string, fns ...func() error) ([][]time.Duration, error) {
	times := make([][]time.Duration, len(fns))
	for i := range e.o.rounds {
		if _, err := e.post(ctx, "/v1/events", map[string]any{"name": name, "email": fmt.Sprintf("%s%d@bench.example", emailPrefix, i)}, nil); err != nil {
			return nil, err
		}
		for j, fn := range fns {
			d, err := timed(fn)
			if err != nil {
				return nil, err
			}
			times[j] = append(times[j], d)
		}
	}
	return times, nil
}

// baselineChart is the query the chart must beat.
func (e *env) baselineChart(ctx context.Context, name string, since, until time.Time) error {
	rows, err := e.pool.Query(ctx, `SELECT date_trunc('day', occurred_at), count(*) FROM events
		WHERE workspace_id = $1 AND name = $2 AND occurred_at >= $3 AND occurred_at < $4 GROUP BY 1`, e.ws.ID, name, since, until)
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		day time.Time
		n   int64
	)
	for rows.Next() {
		if err := rows.Scan(&day, &n); err != nil {
			return err
		}
	}
	return rows.Err()
}

// baselineChartSameMeaning computes what the chart answers from the
// events table: per local day (week, month), the live, unexpired events,
// their distinct contacts and goal sum.
func (e *env) baselineChartSameMeaning(ctx context.Context, name, interval, tz string, since, until time.Time) error {
	rows, err := e.pool.Query(ctx, `SELECT date_trunc($7, occurred_at, $5), count(*), count(DISTINCT contact_id),
			coalesce(sum(goal_value), 0)::float8
		FROM events WHERE workspace_id = $1 AND name = $2 AND occurred_at >= $3 AND occurred_at < $4
		  AND deleted_at IS NULL AND received_at > $6 GROUP BY 1`,
		e.ws.ID, name, since, until, tz, time.Now().Add(-store.DefaultRetention), interval)
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		day         time.Time
		n, contacts int64
		goalSum     float64
	)
	for rows.Next() {
		if err := rows.Scan(&day, &n, &contacts, &goalSum); err != nil {
			return err
		}
	}
	return rows.Err()
}

// checkChart compares a chart with counts computed from the events table.
func (e *env) checkChart(ctx context.Context, name, tz string, buckets []store.Bucket) error {
	rows, err := e.pool.Query(ctx, `SELECT date_trunc('day', occurred_at, $3), count(*), count(DISTINCT contact_id),
			coalesce(sum(goal_value), 0)::float8
		FROM events WHERE workspace_id = $1 AND name = $2 AND deleted_at IS NULL GROUP BY 1`, e.ws.ID, name, tz)
	if err != nil {
		return err
	}
	want := map[time.Time][3]float64{}
	var (
		day        time.Time
		n, c       int64
		goalValues float64
	)
	if _, err := pgx.ForEachRow(rows, []any{&day, &n, &c, &goalValues}, func() error {
		want[day.UTC()] = [3]float64{float64(n), float64(c), goalValues}
		return nil
	}); err != nil {
		return err
	}
	for _, b := range buckets {
		w := want[b.Start.UTC()]
		if float64(b.Count) != w[0] || float64(b.Contacts) != w[1] || fmt.Sprintf("%.2f", b.GoalValueSum) != fmt.Sprintf("%.2f", w[2]) {
			return fmt.Errorf("chart %s %s bucket %s: got %d/%d/%.2f, the events say %v", name, tz, b.Start, b.Count, b.Contacts, b.GoalValueSum, w)
		}
	}
	return nil
}

// segment measures the segment count against hand-written SQL.
func (e *env) segment(ctx context.Context) error {
	name := e.names[0]
	var seg struct {
		ID string `json:"id"`
	}
	status, err := e.post(ctx, "/v1/segments", map[string]any{"name": "engaged buyers", "match": map[string]any{"all": []any{
		map[string]any{"event": name, "count": map[string]any{"op": ">=", "value": 3}, "within": "30d"},
		map[string]any{"goal": map[string]any{"type": "purchase", "aggregate": "sum", "op": ">=", "value": 100, "within": "90d"}},
	}}}, &seg)
	if err != nil || status != http.StatusCreated {
		return fmt.Errorf("create segment: %d %v", status, err)
	}
	var api, base []time.Duration
	var got struct {
		Count int64 `json:"count"`
	}
	var want int64
	for range max(e.o.rounds/3, 5) {
		a, err := timed(func() error { return e.get(ctx, "/v1/segments/"+seg.ID+"/count", &got) })
		if err != nil {
			return err
		}
		b, err := timed(func() error {
			now := time.Now()
			// With the work_mem the store's segment queries run with.
			tx, err := e.pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: "BEGIN READ ONLY; SET LOCAL work_mem = '64MB'"})
			if err != nil {
				return err
			}
			defer func() { _ = tx.Rollback(ctx) }()
			return tx.QueryRow(ctx, `SELECT count(*) FROM
				(SELECT contact_id FROM events WHERE workspace_id = $1 AND name = $2 AND occurred_at >= $3
				   AND deleted_at IS NULL AND received_at > $5 GROUP BY contact_id HAVING count(*) >= 3) a
				JOIN (SELECT contact_id FROM events WHERE workspace_id = $1 AND goal_type = 'purchase' AND occurred_at >= $4
				   AND deleted_at IS NULL AND received_at > $5 GROUP BY contact_id HAVING sum(goal_value) >= 100) b
				USING (contact_id)`, e.ws.ID, name, now.Add(-30*24*time.Hour), now.Add(-90*24*time.Hour),
				now.Add(-store.DefaultRetention)).Scan(&want)
		})
		if err != nil {
			return err
		}
		api, base = append(api, a), append(base, b)
	}
	if got.Count != want {
		return fmt.Errorf("segment count %d, hand-written SQL %d", got.Count, want)
	}
	fmt.Printf("segment count (%s >= 3 in 30d AND purchase sum >= 100 in 90d) = %d: API p50 %s, hand-written SQL (same work_mem) p50 %s: %.2fx of it\n",
		name, got.Count, ms(p50(api)), ms(p50(base)), float64(p50(api))/float64(p50(base)))
	return nil
}

// top measures top contacts of the busiest name over 30 days.
func (e *env) top(ctx context.Context) error {
	name := e.names[0]
	since := url.QueryEscape(e.now.Add(-30 * 24 * time.Hour).Format(time.RFC3339))
	var api []time.Duration
	for range e.o.rounds {
		a, err := timed(func() error { return e.get(ctx, "/v1/event-types/"+name+"/top-contacts?limit=10&since="+since, nil) })
		if err != nil {
			return err
		}
		api = append(api, a)
	}
	fmt.Printf("top contacts of %s over 30 days: API p50 %s\n", name, ms(p50(api)))
	return nil
}

// ingest measures single-event ingest with the rollups on and off.
func (e *env) ingest(ctx context.Context) error {
	window, err := time.ParseDuration(e.o.ingestWindow)
	if err != nil {
		return err
	}
	var (
		failMu   sync.Mutex
		failures = map[string]int{}
	)
	round := func(on bool, seed uint64) (float64, error) {
		base := e.urlOff
		if on {
			base = e.url
		}
		var done, failed atomic.Int64
		stop := time.Now().Add(window)
		var wg sync.WaitGroup
		for c := range e.o.clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(seed, uint64(c)))
				for time.Now().Before(stop) {
					body := map[string]any{"name": e.pickName(r), "email": fmt.Sprintf("c%d@bench.example", r.IntN(e.o.contacts)),
						"properties": map[string]any{"n": r.IntN(100)}}
					if r.IntN(5) == 0 {
						body["goal_type"], body["goal_value"] = "purchase", 10+r.IntN(90)
					}
					status, err := e.postTo(ctx, base, "/v1/events", body, nil)
					if err != nil || status != http.StatusAccepted {
						failed.Add(1)
						failMu.Lock()
						failures[fmt.Sprintf("rollups=%v status=%d err=%v", on, status, err)]++
						failMu.Unlock()
						continue
					}
					done.Add(1)
				}
			}()
		}
		wg.Wait()
		return float64(done.Load()) / window.Seconds(), nil
	}
	for _, side := range []bool{true, false} { // warm-up
		if _, err := round(side, 99); err != nil {
			return err
		}
	}
	var ratios, ons, offs []float64
	for i := range e.o.ingestRounds {
		order := []bool{true, false}
		if i%2 == 1 {
			order = []bool{false, true}
		}
		var on, off float64
		for _, side := range order {
			rate, err := round(side, uint64(i))
			if err != nil {
				return err
			}
			if side {
				on = rate
			} else {
				off = rate
			}
		}
		ons, offs, ratios = append(ons, on), append(offs, off), append(ratios, on/off)
		fmt.Printf("  ingest pair %d: rollups on %.0f/s, off %.0f/s, ratio %.3f\n", i+1, on, off, on/off)
	}
	slices.Sort(ratios)
	slices.Sort(ons)
	slices.Sort(offs)
	fmt.Printf("single-event ingest at %d clients, %d alternating pairs of %s: rollups on median %.0f/s, off %.0f/s; median ratio %.3f\n",
		e.o.clients, e.o.ingestRounds, window, ons[len(ons)/2], offs[len(offs)/2], ratios[len(ratios)/2])
	if len(failures) > 0 {
		for k, n := range failures {
			fmt.Printf("  failed ingest requests: %d x %s\n", n, k)
		}
		return fmt.Errorf("%d kinds of failed ingest requests", len(failures))
	}
	return nil
}

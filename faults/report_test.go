package faults

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Phases of the run, in the order they ran.
const (
	phaseCrashes = "crashes"
	phaseOutage  = "outage"
)

// figure is one line of the summary; zero marks the promises, which must
// be 0 in every phase.
type figure struct {
	key   string
	label string
	zero  bool
}

// The summary's lines, in order.
var figures = []figure{
	{"contacts", "contacts", false},
	{"requests", "ingest requests sent (with retries)", false},
	{"accepted", "events accepted (202)", false},
	{"lost", "accepted events lost", true},
	{"never", "events never accepted (the client gave up)", true},
	{"missing", "enrollments missing", true},
	{"duplicated", "enrollments duplicated", true},
	{"noresume", "follow-ups that failed to resume (wait went no)", true},
	{"early", "  of which the follow-up was recorded before the wait was registered", false},
	{"unlogged", "enrollments without a wait outcome in their step log", true},
	{"twice", "side effects done twice (distinct webhook ids for one step)", true},
	{"both", "contacts sent both the yes and the no webhook", true},
	{"effectmissing", "side effects missing (a logged step without its webhook)", true},
	{"notended", "enrollments not ended after the load", true},
	{"notcompleted", "enrollments ended but not completed (failed, exited)", true},
	{"5xx", "5xx answers (503 with Retry-After apart)", true},
	{"503", "503 answers with Retry-After", false},
	{"neterr", "network errors (refused or reset while the API was down)", false},
	{"other", "other answers that were not 202", true},
	{"redelivered", "webhook requests repeating an id already received (at least once)", false},
	{"outageaccepted", "events accepted while Temporal was down", false},
	{"outagenot202", "ingest answers other than 202 while Temporal was down", true},
}

// tally counts each figure per phase.
type tally map[string]map[string]int

func (t tally) add(key, phase string, n int) {
	if t[key] == nil {
		t[key] = map[string]int{}
	}
	t[key][phase] += n
}

func (t tally) total(key string) int {
	n := 0
	for _, v := range t[key] {
		n += v
	}
	return n
}

// violations lists every promise that does not hold.
func (t tally) violations() []string {
	var out []string
	for _, f := range figures {
		if f.zero && t.total(f.key) != 0 {
			out = append(out, fmt.Sprintf("%s: %d (must be 0)", strings.TrimSpace(f.label), t.total(f.key)))
		}
	}
	return out
}

// print writes the summary table.
func (t tally) print(w io.Writer) {
	width := 0
	for _, f := range figures {
		width = max(width, len(f.label))
	}
	fmt.Fprintf(w, "%-*s  %8s  %8s  %8s  %7s\n", width, "", phaseCrashes, phaseOutage, "total", "must be")
	for _, f := range figures {
		must := ""
		if f.zero {
			must = "0"
		}
		fmt.Fprintf(w, "%-*s  %8d  %8d  %8d  %7s\n", width, f.label, t[f.key][phaseCrashes], t[f.key][phaseOutage], t.total(f.key), must)
	}
}

// enrollment is an enrollment as GET /v1/enrollments/{id} shows it.
type enrollment struct {
	ID        string `json:"id"`
	ContactID string `json:"contact_id"`
	Status    string `json:"status"`
	Reason    string `json:"reason"`
	Steps     []struct {
		StepID  string    `json:"step_id"`
		Outcome string    `json:"outcome"`
		At      time.Time `json:"at"`
	} `json:"steps"`
}

// outcome is the last outcome the step logged.
func (e *enrollment) outcome(step string) string {
	var out string
	for _, s := range e.Steps {
		if s.StepID == step {
			out = s.Outcome
		}
	}
	return out
}

// loggedAt is when the step logged the outcome; zero if it did not.
func (e *enrollment) loggedAt(step, outcome string) time.Time {
	for _, s := range e.Steps {
		if s.StepID == step && s.Outcome == outcome {
			return s.At
		}
	}
	return time.Time{}
}

// activeEnrollments counts the automation's enrollments that have not ended
// (one page, enough to tell zero from not).
func activeEnrollments(ctx context.Context, c *apiClient, automationID string) (int, error) {
	var page struct {
		Data []enrollment `json:"data"`
	}
	err := c.get(ctx, "/v1/enrollments?status=active&limit=1000&automation_id="+url.QueryEscape(automationID), &page)
	return len(page.Data), err
}

// enrollments reads every enrollment of the automation with its step log.
func enrollments(ctx context.Context, c *apiClient, automationID string) ([]enrollment, error) {
	var all []enrollment
	cursor := ""
	for {
		q := "/v1/enrollments?limit=1000&automation_id=" + url.QueryEscape(automationID)
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		var page struct {
			Data       []enrollment `json:"data"`
			NextCursor *string      `json:"next_cursor"`
		}
		if err := c.get(ctx, q, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Data...)
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	for i := range all {
		if err := c.get(ctx, "/v1/enrollments/"+all[i].ID, &all[i]); err != nil {
			return nil, err
		}
	}
	return all, nil
}

// storedEvent is an event row as the suite reads it straight from the
// database, beside the API, to count what was kept.
type storedEvent struct {
	id         string
	receivedAt time.Time
}

// storedEvents reads the workspace's events by external_id.
func storedEvents(ctx context.Context, dbURL, workspaceID string) (map[string]storedEvent, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT id::text, external_id, received_at FROM events
		WHERE workspace_id = $1 AND external_id IS NOT NULL AND deleted_at IS NULL`, workspaceID)
	if err != nil {
		return nil, err
	}
	out := map[string]storedEvent{}
	var ext string
	var ev storedEvent
	_, err = pgx.ForEachRow(rows, []any{&ev.id, &ext, &ev.receivedAt}, func() error {
		out[ext] = ev
		return nil
	})
	return out, err
}

// verdict is what the checks found: the figures, notes that explain them
// (printed with the summary), and details naming contacts (logged).
type verdict struct {
	tally   tally
	notes   []string
	details []string
}

func (v *verdict) detail(format string, args ...any) {
	if len(v.details) < 40 {
		v.details = append(v.details, fmt.Sprintf(format, args...))
	}
}

// check compares what the clients were told with what the system kept and
// did: events, enrollments, step logs, webhooks, answers.
func check(contacts []*contact, stored map[string]storedEvent, enrolls []enrollment, deliveries []delivery,
	answers []answer, outageFrom, outageTo time.Time) *verdict {
	v := &verdict{tally: tally{}}
	t := v.tally
	byContactID := map[string][]*enrollment{}
	for i := range enrolls {
		byContactID[enrolls[i].ContactID] = append(byContactID[enrolls[i].ContactID], &enrolls[i])
	}
	fx := byContact(deliveries)

	for _, k := range contacts {
		p := k.phase
		t.add("contacts", p, 1)
		for _, s := range []*sent{&k.trigger, &k.followUp} {
			if s.accepted.IsZero() {
				t.add("never", p, 1)
				v.detail("%s: event %s never accepted: %s", k.email, s.externalID, s.failure)
				break // no follow-up without its trigger
			}
			t.add("accepted", p, 1)
			got, ok := stored[s.externalID]
			if !ok || got.id != s.eventID {
				t.add("lost", p, 1)
				v.detail("%s: event %s was accepted as %s but the database has %q", k.email, s.externalID, s.eventID, got.id)
			}
		}
		if k.trigger.accepted.IsZero() {
			continue
		}
		list := byContactID[k.trigger.contactID]
		switch {
		case len(list) == 0:
			t.add("missing", p, 1)
			v.detail("%s: no enrollment", k.email)
			continue
		case len(list) > 1:
			t.add("duplicated", p, len(list)-1)
			v.detail("%s: %d enrollments", k.email, len(list))
		}
		e := list[0]
		switch e.Status {
		case "active":
			t.add("notended", p, 1)
			v.detail("%s: enrollment %s still active (log %v)", k.email, e.ID, e.Steps)
		case "completed":
		default:
			t.add("notcompleted", p, 1)
			v.detail("%s: enrollment %s ended %s: %s", k.email, e.ID, e.Status, e.Reason)
		}
		switch e.outcome("onboarding") {
		case "yes":
		case "no":
			t.add("noresume", p, 1)
			// The wait logs "waiting" once it is registered: an event
			// recorded before that is the look-back's to find, one after
			// it the record path's to signal.
			registered := e.loggedAt("onboarding", "waiting")
			if f, ok := stored[k.followUp.externalID]; ok && f.receivedAt.Before(registered) {
				t.add("early", p, 1)
			} else {
				v.detail("%s: the wait of enrollment %s went no although the follow-up %s was recorded after the wait was registered",
					k.email, e.ID, k.followUp.externalID)
			}
		default:
			if e.Status != "active" {
				t.add("unlogged", p, 1)
				v.detail("%s: enrollment %s (%s) logged no wait outcome", k.email, e.ID, e.Status)
			}
		}
		got := fx[k.email]
		if got == nil {
			got = &effects{ids: map[string]map[string]bool{}}
		}
		for step, ids := range got.ids {
			if len(ids) > 1 {
				t.add("twice", p, 1)
				v.detail("%s: %d distinct webhook ids for step %s", k.email, len(ids), step)
			}
		}
		if len(got.ids["yes"]) > 0 && len(got.ids["no"]) > 0 {
			t.add("both", p, 1)
			v.detail("%s: got both the yes and the no webhook", k.email)
		}
		// Every logged action has its webhook (they are logged after it
		// answered 2xx).
		for _, step := range []struct{ id, hook, outcome string }{
			{"welcome", "welcome", "done"}, {"done", "yes", "done"}, {"nudge", "no", "done"},
		} {
			if e.outcome(step.id) == step.outcome && len(got.ids[step.hook]) == 0 {
				t.add("effectmissing", p, 1)
				v.detail("%s: step %s logged done but the %s webhook never came", k.email, step.id, step.hook)
			}
		}
		total := 0
		for _, ids := range got.ids {
			total += len(ids)
		}
		t.add("redelivered", p, got.requests-total)
	}

	type span struct {
		n           int
		first, last time.Time
	}
	failed := map[int]*span{}
	for _, a := range answers {
		t.add("requests", a.phase, 1)
		if a.status >= 500 {
			sp := failed[a.status]
			if sp == nil {
				sp = &span{first: a.at}
				failed[a.status] = sp
			}
			sp.n++
			sp.last = a.at
		}
		switch {
		case a.status == 0:
			t.add("neterr", a.phase, 1)
		case a.status == 202:
		case a.status == 503 && a.retryAfter:
			t.add("503", a.phase, 1)
		case a.status >= 500:
			t.add("5xx", a.phase, 1)
		default:
			t.add("other", a.phase, 1)
		}
		if !outageFrom.IsZero() && !a.at.Before(outageFrom) && !a.at.After(outageTo) {
			if a.status == 202 {
				t.add("outageaccepted", a.phase, 1)
			} else {
				t.add("outagenot202", a.phase, 1)
				v.detail("while Temporal was down an ingest request got %d %s", a.status, a.err)
			}
		}
	}
	for _, code := range sortedKeys(failed) {
		sp := failed[code]
		v.notes = append(v.notes, fmt.Sprintf("%d answers %d, from %s to %s", sp.n, code, clock(sp.first), clock(sp.last)))
	}
	return v
}

// clock shows a time of day to the millisecond, to set answers beside the
// faults' timeline.
func clock(t time.Time) string { return t.Format("15:04:05.000") }

// faultRecord is one fault as it happened.
type faultRecord struct {
	phase     string
	when      time.Time
	what      string
	at        time.Duration // since the phase's load began
	recovered time.Duration // from the fault to everything answering again
}

func printTimeline(w io.Writer, rs []faultRecord) {
	for _, r := range rs {
		fmt.Fprintf(w, "  %-8s %s +%5.1fs  %-32s back after %.1fs\n", r.phase, clock(r.when), r.at.Seconds(), r.what, r.recovered.Seconds())
	}
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sortedStrings(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

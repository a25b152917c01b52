// Package faults proves Signalbox keeps its promises under crashes, with
// every part a real process: the suite's own PostgreSQL cluster, the
// Temporal dev server on a SQLite file, `signalbox api` and `signalbox
// worker`. Contacts go through trigger → webhook → wait_for_event → webhook
// while the suite SIGKILLs the API, the worker, Temporal, the API and the
// worker together, and restarts PostgreSQL with `pg_ctl restart -m
// immediate`; then Temporal stays down for 30 s while events keep coming.
// The summary it prints counts lost events, missing or duplicated
// enrollments, waits that failed to resume, side effects done twice,
// enrollments that never ended and 5xx answers, each of which must be 0.
//
// `make test-faults` runs it with 300 contacts; `make test` with 60
// (FAULTS_CONTACTS). Both set the binaries' paths it needs.
package faults

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// config sizes a run from the environment.
type config struct {
	// contacts go through the crash phase (FAULTS_CONTACTS, default 60).
	contacts int
	// window is how long the crash phase's contacts take to start
	// (FAULTS_WINDOW; default contacts/5 seconds, at least 30 s so that
	// the five faults, 5 s apart, each meet a load).
	window time.Duration
	// outageContacts start during the outage phase (FAULTS_OUTAGE_CONTACTS,
	// default a fifth of contacts, at least 20).
	outageContacts int
	// outage is how long Temporal stays down (FAULTS_OUTAGE, default 30s).
	outage time.Duration
}

func loadConfig(t *testing.T) config {
	t.Helper()
	c := config{contacts: envInt(t, "FAULTS_CONTACTS", 60)}
	c.window = envDuration(t, "FAULTS_WINDOW", max(30*time.Second, time.Duration(c.contacts)*time.Second/5))
	c.outageContacts = envInt(t, "FAULTS_OUTAGE_CONTACTS", max(20, c.contacts/5))
	c.outage = envDuration(t, "FAULTS_OUTAGE", 30*time.Second)
	return c
}

func envInt(t *testing.T, key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "%s=%q", key, v)
	require.Positive(t, n, "%s", key)
	return n
}

func envDuration(t *testing.T, key string, def time.Duration) time.Duration {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	require.NoError(t, err, "%s=%q", key, v)
	require.Positive(t, d, "%s", key)
	return d
}

// automation is the one under load: a webhook, a wait for the follow-up,
// and a webhook on each branch. Every body names the contact and the step,
// so the receiver can count side effects per contact and step.
func automation(hookURL string) map[string]any {
	hook := func(id, step string) map[string]any {
		return map[string]any{"id": id, "type": "webhook", "url": hookURL + "/" + step,
			"body": map[string]any{"email": "contact.email", "step": "'" + step + "'"}}
	}
	return map[string]any{
		"name":    "faults",
		"trigger": map[string]any{"event": triggerEvent, "frequency": "every"},
		"steps": []any{
			hook("welcome", "welcome"),
			map[string]any{"id": "onboarding", "type": "wait_for_event", "event": followUpEvent, "timeout": "20s",
				"yes": []any{hook("done", "yes")},
				"no":  []any{hook("nudge", "no")}},
		},
	}
}

func TestFaults(t *testing.T) {
	bin := binariesFromEnv(t)
	cfg := loadConfig(t)
	began := time.Now()
	// Every wait below is bounded by this, which leaves the clean-up time
	// to run before go test's -timeout would kill the binary.
	deadline := began.Add(20 * time.Minute)
	if d, ok := t.Deadline(); ok {
		deadline = d.Add(-90 * time.Second)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	fmt.Printf("fault suite: %d contacts over %s with five faults, then %d contacts with Temporal down for %s\n",
		cfg.contacts, cfg.window, cfg.outageContacts, cfg.outage)

	s := startSystem(t, bin)
	wsID, key := s.workspace()
	hooks := newReceiver(t)
	c := newAPIClient(s.apiURL, key)
	status, _, raw, err := c.call(ctx, "POST", "/v1/automations", automation(hooks.srv.URL))
	require.NoError(t, err)
	require.Equal(t, 201, status, "create the automation: %s", raw)
	autoID := jsonField(t, raw, "id")
	status, _, raw, err = c.call(ctx, "POST", "/v1/automations/"+autoID+"/enable", nil)
	require.NoError(t, err)
	require.Equal(t, 200, status, "enable the automation: %s", raw)
	fmt.Printf("system up in %.1fs (logs in %s)\n", time.Since(began).Seconds(), s.dir)

	sc := &scenario{s: s, c: c, cfg: cfg, automationID: autoID}
	runID := began.UTC().Format("150405")
	crash := newContacts(runID, phaseCrashes, 1, cfg.contacts)
	require.NoError(t, sc.crashes(ctx, crash))
	outage := newContacts(runID, phaseOutage, cfg.contacts+1, cfg.outageContacts)
	outageFrom, outageTo, err := sc.outage(ctx, outage)
	require.NoError(t, err)
	contacts := slices.Concat(crash, outage)

	// What the clients were told against what the system kept and did.
	stored, err := storedEvents(ctx, s.pg.url(), wsID)
	require.NoError(t, err)
	enrolls, err := enrollments(ctx, c, autoID)
	require.NoError(t, err)
	v := check(contacts, stored, enrolls, hooks.deliveries(), c.allAnswers(), outageFrom, outageTo)

	fmt.Println("\nfaults (time since the phase's load began):")
	printTimeline(os.Stdout, sc.timeline)
	fmt.Println()
	v.tally.print(os.Stdout)
	if len(v.notes) > 0 {
		fmt.Println("\n5xx answers by status:")
		for _, n := range v.notes {
			fmt.Println("  " + n)
		}
	}
	fmt.Printf("\nwall clock: %.1fs\n", time.Since(began).Seconds())
	for _, d := range v.details {
		t.Log(d)
	}
	died := s.diedOnTheirOwn()
	violations := v.tally.violations()
	if len(died) > 0 {
		violations = append(violations, "processes that exited on their own: "+strings.Join(died, "; "))
	}
	require.Empty(t, violations, "promises broken under faults")
}

// scenario is one run: the system, a client of its API, the automation
// under load, and the faults as they happened.
type scenario struct {
	s            *system
	c            *apiClient
	cfg          config
	automationID string
	timeline     []faultRecord
}

// crashes drives the contacts over the window while five faults happen one
// after another, spread over it (each after the last one recovered), then
// waits for every enrollment to end.
func (sc *scenario) crashes(ctx context.Context, contacts []*contact) error {
	s := sc.s
	faults := []struct {
		what string
		do   func() error
	}{
		{"SIGKILL api, restart", func() error { return s.restart(s.api) }},
		{"SIGKILL worker, restart", func() error { return s.restart(s.worker) }},
		{"SIGKILL temporal, restart", func() error { return s.restart(s.temporal) }},
		{"SIGKILL api+worker, restart", func() error { return s.restart(s.api, s.worker) }},
		{"pg_ctl restart -m immediate", func() error {
			if err := s.pg.restartImmediate(); err != nil {
				return err
			}
			return s.apiReady(2 * time.Minute)
		}},
	}
	return sc.phase(ctx, phaseCrashes, contacts, sc.cfg.window, func(start time.Time) error {
		for i, f := range faults {
			at := start.Add(sc.cfg.window * time.Duration(i+1) / time.Duration(len(faults)+1))
			if err := sleep(ctx, time.Until(at)); err != nil {
				return err
			}
			from := time.Now()
			if err := f.do(); err != nil {
				return fmt.Errorf("%s: %w", f.what, err)
			}
			sc.timeline = append(sc.timeline, faultRecord{phase: phaseCrashes, when: from, what: f.what,
				at: from.Sub(start), recovered: time.Since(from)})
		}
		return nil
	})
}

// outageLead is how long the outage phase's load runs before Temporal goes
// down, and after it is back.
const outageLead = 5 * time.Second

// outage drives the contacts while Temporal is down (killed, and started
// again on its database after cfg.outage), then waits for every enrollment
// to end. It returns when Temporal was down.
func (sc *scenario) outage(ctx context.Context, contacts []*contact) (from, to time.Time, err error) {
	s := sc.s
	err = sc.phase(ctx, phaseOutage, contacts, sc.cfg.outage+2*outageLead, func(start time.Time) error {
		if err := sleep(ctx, outageLead); err != nil {
			return err
		}
		if err := s.temporal.kill(); err != nil {
			return err
		}
		from = time.Now()
		if err := sleep(ctx, sc.cfg.outage); err != nil {
			return err
		}
		to = time.Now()
		if err := s.temporal.start(); err != nil {
			return err
		}
		if err := s.temporalHealthy(2 * time.Minute); err != nil {
			return err
		}
		sc.timeline = append(sc.timeline, faultRecord{phase: phaseOutage, when: from,
			what: fmt.Sprintf("temporal down for %s", sc.cfg.outage), at: from.Sub(start), recovered: time.Since(from)})
		return nil
	})
	return from, to, err
}

// phase drives the contacts over window while faults runs beside the load,
// then waits (bounded) until no enrollment is active; the summary counts
// those that still are.
func (sc *scenario) phase(ctx context.Context, name string, contacts []*contact, window time.Duration, faults func(start time.Time) error) error {
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- faults(start) }()
	sc.c.drive(ctx, contacts, window)
	if err := <-errc; err != nil {
		return err
	}
	load := time.Since(start)
	d := sc.s.waitEnded(ctx, sc.c, sc.automationID, 6*time.Minute)
	state := "every enrollment ended"
	if d.err != nil {
		state = "not every enrollment ended: " + d.err.Error()
	}
	fmt.Printf("%s phase: load %.1fs; %s %.1fs later\n", name, load.Seconds(), state, d.took.Seconds())
	return nil
}

// sleep waits for d unless ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// restart SIGKILLs the processes together, then starts them again and
// waits until each works.
func (s *system) restart(ps ...*proc) error {
	var wg sync.WaitGroup
	errs := make([]error, len(ps))
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.kill()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	for _, p := range ps {
		if err := p.start(); err != nil {
			return err
		}
	}
	for _, p := range ps {
		var err error
		switch p {
		case s.api:
			err = s.apiReady(time.Minute)
		case s.worker:
			err = s.workerPolling(p.startCount(), 2*time.Minute)
		case s.temporal:
			err = s.temporalHealthy(2 * time.Minute)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// drain is how waiting for the enrollments to end went.
type drain struct {
	took time.Duration
	err  error
}

// waitEnded polls until no enrollment of the automation is active, at most
// for timeout; the summary counts what is still active after it.
func (s *system) waitEnded(ctx context.Context, c *apiClient, automationID string, timeout time.Duration) drain {
	from := time.Now()
	var last error
	ok := pollUntil(timeout, time.Second, func() bool {
		if ctx.Err() != nil {
			return true
		}
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		n, err := activeEnrollments(qctx, c, automationID)
		last = err
		return err == nil && n == 0
	})
	switch {
	case ctx.Err() != nil:
		return drain{took: time.Since(from), err: ctx.Err()}
	case !ok:
		return drain{took: time.Since(from), err: fmt.Errorf("still active after %s (last error: %v)", timeout, last)}
	}
	return drain{took: time.Since(from)}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/signalbox/signalbox/store"
)

// tenant is a workspace of the system and its API key.
type tenant struct {
	s   *system
	ws  store.Workspace
	key string
}

// newTenant makes a workspace on the enterprise plan (no monthly cap).
func (s *system) newTenant(ctx context.Context, name string) (*tenant, error) {
	ws, key, err := s.store.CreateWorkspace(ctx, name, store.PlanEnterprise)
	if err != nil {
		return nil, fmt.Errorf("create workspace: %w", err)
	}
	return &tenant{s: s, ws: ws, key: key.Secret}, nil
}

// call sends a request and returns the answer's body; any other status
// than want is an error that quotes the body.
func (t *tenant) call(ctx context.Context, method, path string, body []byte, want int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, t.s.url+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+t.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.s.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, bytes.TrimSpace(raw))
	}
	return raw, nil
}

// automation saves and enables an automation given as JSON text, through
// the API, and returns its id.
func (t *tenant) automation(ctx context.Context, def string) (string, error) {
	raw, err := t.call(ctx, http.MethodPost, "/v1/automations", []byte(def), http.StatusCreated)
	if err != nil {
		return "", err
	}
	var a struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &a); err != nil || a.ID == "" {
		return "", fmt.Errorf("create automation: unexpected answer %s", raw)
	}
	return a.ID, t.setEnabled(ctx, a.ID, true)
}

// setEnabled enables or disables an automation through the API.
func (t *tenant) setEnabled(ctx context.Context, id string, on bool) error {
	verb := "disable"
	if on {
		verb = "enable"
	}
	_, err := t.call(ctx, http.MethodPost, "/v1/automations/"+id+"/"+verb, nil, http.StatusOK)
	return err
}

// eventAnswer is the part of POST /v1/events's answer the bench checks.
type eventAnswer struct {
	ContactID string `json:"contact_id"`
	Triggered int    `json:"workflows_triggered"`
	Resumed   int    `json:"executions_resumed"`
}

// eventBody is one event for an existing contact, by id.
func eventBody(name string, contact uuid.UUID) []byte {
	return fmt.Appendf(nil, `{"name":%q,"contact_id":%q}`, name, contact.String())
}

// event sends one event and requires 202 with the expected counts.
func (t *tenant) event(ctx context.Context, name string, contact uuid.UUID, triggered, resumed int) error {
	raw, err := t.call(ctx, http.MethodPost, "/v1/events", eventBody(name, contact), http.StatusAccepted)
	if err != nil {
		return err
	}
	var a eventAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		return fmt.Errorf("POST /v1/events: unexpected answer %s", raw)
	}
	if a.Triggered != triggered || a.Resumed != resumed {
		return fmt.Errorf("POST /v1/events %s: triggered %d and resumed %d, want %d and %d",
			name, a.Triggered, a.Resumed, triggered, resumed)
	}
	return nil
}

// eventBatch sends events of one name for the contacts in batches of up
// to 1,000 and requires that each triggers one automation.
func (t *tenant) eventBatch(ctx context.Context, name string, contacts []uuid.UUID) error {
	for len(contacts) > 0 {
		n := min(len(contacts), 1000)
		var buf bytes.Buffer
		buf.WriteString(`{"events":[`)
		for i, c := range contacts[:n] {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.Write(eventBody(name, c))
		}
		buf.WriteString(`]}`)
		raw, err := t.call(ctx, http.MethodPost, "/v1/events/batch", buf.Bytes(), http.StatusOK)
		if err != nil {
			return err
		}
		var a struct {
			Processed int `json:"processed"`
			Triggered int `json:"workflows_triggered"`
		}
		if err := json.Unmarshal(raw, &a); err != nil || a.Processed != n || a.Triggered != n {
			return fmt.Errorf("POST /v1/events/batch: want %d processed and triggered, got %s", n, raw)
		}
		contacts = contacts[n:]
	}
	return nil
}

// contactPool hands out contacts: each once (next) or round robin (cycle).
type contactPool struct {
	ids []uuid.UUID
	i   atomic.Int64
}

// next returns a contact not handed out before, or an error when the pool
// is used up.
func (p *contactPool) next() (uuid.UUID, error) {
	i := p.i.Add(1) - 1
	if i >= int64(len(p.ids)) {
		return uuid.Nil, fmt.Errorf("all %d contacts prepared for the phase are used; the system is faster than expected", len(p.ids))
	}
	return p.ids[i], nil
}

// cycle returns the pool's contacts in turn, forever.
func (p *contactPool) cycle() uuid.UUID {
	return p.ids[(p.i.Add(1)-1)%int64(len(p.ids))]
}

// failures counts the errors of a phase and keeps the first.
type failures struct {
	n     atomic.Int64
	mu    sync.Mutex
	first error
}

func (f *failures) add(err error) {
	if f.n.Add(1) == 1 {
		f.mu.Lock()
		f.first = err
		f.mu.Unlock()
	}
}

func (f *failures) firstError() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.first == nil {
		return ""
	}
	return f.first.Error()
}

// window is a measured interval of a run.
type window struct{ from, to time.Time }

func (w window) seconds() float64 { return w.to.Sub(w.from).Seconds() }

// contains reports whether t falls in [from, to).
func (w window) contains(t time.Time) bool { return !t.Before(w.from) && t.Before(w.to) }

// closedLoop runs op from clients goroutines back to back for warmup plus
// duration and returns the measured window and how many ops finished in
// it. In-flight ops are let finish (not cancelled) when time is up, so that
// every accepted request is followed to its end. An op's error is counted
// in fail and the client goes on.
func closedLoop(ctx context.Context, clients int, warmup, duration time.Duration, fail *failures,
	op func(ctx context.Context) error) (window, int) {
	start := time.Now()
	w := window{from: start.Add(warmup), to: start.Add(warmup + duration)}
	var done atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(w.to) {
				if err := op(ctx); err != nil {
					if ctx.Err() == nil {
						fail.add(err)
					}
					continue
				}
				if w.contains(time.Now()) {
					done.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return w, int(done.Load())
}

// openLoop starts op(i) for i in [0, n) at rate per second, each on its own
// schedule whatever the others take, and waits for all. An op's error is
// counted in fail.
func openLoop(ctx context.Context, rate float64, n int, fail *failures, op func(ctx context.Context, i int) error) {
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		at := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(at)):
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := op(ctx, i); err != nil && ctx.Err() == nil {
				fail.add(err)
			}
		}()
	}
	wg.Wait()
}

package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Event names of the automation under load.
const (
	triggerEvent  = "signup.started"
	followUpEvent = "onboarding.done"
	// maxFollowUpDelay is how long after its trigger a contact's follow-up
	// is sent at the latest (from the trigger's first attempt; never before
	// the trigger was accepted).
	maxFollowUpDelay = 2 * time.Second
)

// answer is one attempt of an ingest request and what came of it.
type answer struct {
	phase      string
	at         time.Time
	status     int // 0 for a network error (refused, reset, timeout)
	retryAfter bool
	err        string
}

// sent is one event a client sends until it is accepted.
type sent struct {
	externalID string
	firstSent  time.Time
	accepted   time.Time // zero when never accepted
	eventID    string
	contactID  string
	attempts   int
	failure    string // why the client gave up
}

// contact is one simulated user: a trigger, then a follow-up at most
// maxFollowUpDelay after it.
type contact struct {
	n        int
	phase    string
	email    string
	delay    time.Duration
	trigger  sent
	followUp sent
}

// apiClient talks to the API over HTTP like a customer's application.
type apiClient struct {
	url string
	key string
	hc  *http.Client

	mu      sync.Mutex
	answers []answer
}

func newAPIClient(url, key string) *apiClient {
	return &apiClient{url: url, key: key, hc: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second},
	}}
}

// call sends one request and returns the status and body.
func (c *apiClient) call(ctx context.Context, method, path string, body any) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, nil, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw, err
}

// get reads a JSON document, requiring 200.
func (c *apiClient) get(ctx context.Context, path string, out any) error {
	status, _, raw, err := c.call(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, status, raw)
	}
	return json.Unmarshal(raw, out)
}

// record keeps an answer for the summary.
func (c *apiClient) record(a answer) {
	c.mu.Lock()
	c.answers = append(c.answers, a)
	c.mu.Unlock()
}

// allAnswers returns a copy of every ingest answer so far.
func (c *apiClient) allAnswers() []answer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]answer(nil), c.answers...)
}

// send posts one event until it is accepted (202), retrying with the same
// body (so the same external_id and occurred_at) after a network error, a
// 5xx or a 429, as a client following the API's contract does. Another
// answer, or ctx ending, gives up and says why in s.failure.
func (c *apiClient) send(ctx context.Context, phase string, s *sent, body map[string]any) {
	raw, _ := json.Marshal(body)
	backoff := 100 * time.Millisecond
	for {
		if ctx.Err() != nil {
			s.failure = fmt.Sprintf("not accepted after %d attempts: %v", s.attempts, ctx.Err())
			return
		}
		s.attempts++
		status, hdr, resp, err := c.call(ctx, http.MethodPost, "/v1/events", json.RawMessage(raw))
		a := answer{phase: phase, at: time.Now(), status: status}
		if err != nil {
			a.status, a.err = 0, err.Error()
		} else {
			a.retryAfter = hdr.Get("Retry-After") != ""
		}
		if ctx.Err() == nil {
			c.record(a)
		}
		wait := backoff
		switch {
		case err != nil:
		case status == http.StatusAccepted:
			var out struct {
				EventID   string `json:"event_id"`
				ContactID string `json:"contact_id"`
			}
			if err := json.Unmarshal(resp, &out); err != nil {
				s.failure = fmt.Sprintf("202 with an unreadable body %q", resp)
				return
			}
			s.accepted, s.eventID, s.contactID = a.at, out.EventID, out.ContactID
			return
		case status >= 500 || status == http.StatusTooManyRequests:
			if secs, err := strconv.Atoi(hdr.Get("Retry-After")); err == nil && secs > 0 {
				wait = min(time.Duration(secs)*time.Second, 5*time.Second)
			}
		default:
			s.failure = fmt.Sprintf("answered %d: %s", status, resp)
			return
		}
		backoff = min(2*backoff, time.Second)
		_ = sleep(ctx, wait) // ctx's end is handled at the top of the loop
	}
}

// run is the life of one contact: the trigger, then the follow-up.
func (c *apiClient) run(ctx context.Context, k *contact) {
	k.trigger.firstSent = time.Now()
	c.send(ctx, k.phase, &k.trigger, map[string]any{
		"name": triggerEvent, "email": k.email, "create_if_missing": true,
		"external_id": k.trigger.externalID, "occurred_at": k.trigger.firstSent.UTC().Format(time.RFC3339Nano),
		"properties": map[string]any{"n": k.n},
	})
	if k.trigger.accepted.IsZero() {
		return
	}
	// At most maxFollowUpDelay after the trigger was first sent, and never
	// before it was accepted (an awaited event from before the trigger must
	// not resume the wait, and does not).
	_ = sleep(ctx, time.Until(k.trigger.firstSent.Add(k.delay))) // send checks ctx
	k.followUp.firstSent = time.Now()
	c.send(ctx, k.phase, &k.followUp, map[string]any{
		"name": followUpEvent, "email": k.email,
		"external_id": k.followUp.externalID, "occurred_at": k.followUp.firstSent.UTC().Format(time.RFC3339Nano),
	})
}

// newContacts makes n contacts of a phase, with follow-up delays spread
// evenly over [0, maxFollowUpDelay).
func newContacts(runID, phase string, first, n int) []*contact {
	rng := rand.New(rand.NewPCG(uint64(first), uint64(n)))
	out := make([]*contact, n)
	for i := range out {
		num := first + i
		out[i] = &contact{
			n: num, phase: phase,
			email:    fmt.Sprintf("c%05d-%s@faults.test", num, runID),
			delay:    time.Duration(rng.Int64N(int64(maxFollowUpDelay))),
			trigger:  sent{externalID: fmt.Sprintf("%s-trigger-%05d", runID, num)},
			followUp: sent{externalID: fmt.Sprintf("%s-followup-%05d", runID, num)},
		}
	}
	return out
}

// drive starts the contacts at a steady rate over window (the first at
// once) and returns when every one of them is done.
func (c *apiClient) drive(ctx context.Context, contacts []*contact, window time.Duration) {
	start := time.Now()
	var wg sync.WaitGroup
	for i, k := range contacts {
		at := start.Add(window * time.Duration(i) / time.Duration(len(contacts)))
		_ = sleep(ctx, time.Until(at)) // send checks ctx
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(ctx, k)
		}()
	}
	wg.Wait()
}

// jsonField reads one string member of a JSON object.
func jsonField(t *testing.T, raw []byte, name string) string {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m), "%s", raw)
	v, _ := m[name].(string)
	require.NotEmpty(t, v, "no %q in %s", name, raw)
	return v
}

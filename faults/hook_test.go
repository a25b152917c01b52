package faults

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// delivery is one webhook request the receiver got.
type delivery struct {
	id    string // the webhook-id header
	email string
	step  string
	at    time.Time
}

// receiver is the webhook destination of the automation's steps: it
// answers 200 to everything and keeps what it got, so the suite can count
// side effects per contact and step.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []delivery
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		raw, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		var body struct {
			Email string `json:"email"`
			Step  string `json:"step"`
		}
		_ = json.Unmarshal(raw, &body)
		r.mu.Lock()
		r.got = append(r.got, delivery{id: req.Header.Get("webhook-id"), email: body.Email, step: body.Step, at: time.Now()})
		r.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// deliveries returns a copy of what the receiver got so far.
func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// effects is what the receiver got for one contact: the distinct webhook
// ids per step, and how many requests in all.
type effects struct {
	ids      map[string]map[string]bool
	requests int
}

// byContact groups the deliveries by contact email.
func byContact(ds []delivery) map[string]*effects {
	out := map[string]*effects{}
	for _, d := range ds {
		e := out[d.email]
		if e == nil {
			e = &effects{ids: map[string]map[string]bool{}}
			out[d.email] = e
		}
		if e.ids[d.step] == nil {
			e.ids[d.step] = map[string]bool{}
		}
		e.ids[d.step][d.id] = true
		e.requests++
	}
	return out
}

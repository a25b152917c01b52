package ingest

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"time"

	"github.com/signalbox/signalbox/store"
)

// RecorderConfig tunes group commit. The zero value is usable.
type RecorderConfig struct {
	// Committers is how many groups may be in flight at once; default
	// GOMAXPROCS, at least 2. More committers make smaller groups, and on
	// a small machine each transaction's fixed cost then dominates.
	Committers int
	// MaxGroupEvents caps the events of one group; default 500.
	MaxGroupEvents int
	// DirectEvents is the request size from which a request skips grouping
	// and commits alone, as batches do; default 100.
	DirectEvents int
	// Timeout bounds one group's transaction; default 30s.
	Timeout time.Duration
	// OnIntents is called after a commit that wrote outbox intents, to
	// deliver them at once (the dispatcher's Wake).
	OnIntents func()
	// Catalog, when set, checks every request's events against the
	// workspace's event catalog before they are recorded (package catalog).
	Catalog Checker
}

func (c *RecorderConfig) defaults() {
	if c.Committers <= 0 {
		c.Committers = max(2, runtime.GOMAXPROCS(0))
	}
	if c.MaxGroupEvents <= 0 {
		c.MaxGroupEvents = 500
	}
	if c.DirectEvents <= 0 {
		c.DirectEvents = 100
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
}

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("recorder closed")

// Recorder records events, committing concurrent small requests together:
// a committer takes the first waiting request, then every other that is
// already waiting, and writes them in one transaction. Under light load a
// request commits alone at once; under heavy load one fsync serves many
// requests, which is how the record path keeps up with PostgreSQL's own
// single-insert rate despite doing several statements per event.
//
// Quota is decided before a request joins a group (see quotaGate): a
// workspace known to be at its hard cap is refused without a transaction,
// one near it commits alone, so that no workspace's refusal aborts a group
// of others.
type Recorder struct {
	store recordStore
	cfg   RecorderConfig
	quota *quotaGate
	queue chan *pending
	// direct bounds the large requests committing alone at once, so that
	// with the committers they never hold the whole connection pool.
	direct chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
	mu     sync.RWMutex
	done   bool
}

// recordStore is what the recorder needs of the store; tests count calls.
type recordStore interface {
	Record(ctx context.Context, reqs []*store.RecordRequest) ([]store.RecordOutcome, error)
}

type pending struct {
	req     *store.RecordRequest
	quota   quotaDecision
	outcome store.RecordOutcome
	err     error
	ready   chan struct{}
}

// NewRecorder starts the committers; Close stops them.
func NewRecorder(s *store.Store, cfg RecorderConfig) *Recorder { return newRecorder(s, cfg) }

func newRecorder(s recordStore, cfg RecorderConfig) *Recorder {
	cfg.defaults()
	r := &Recorder{store: s, cfg: cfg, quota: newQuotaGate(time.Now),
		queue:  make(chan *pending, cfg.Committers*cfg.MaxGroupEvents),
		direct: make(chan struct{}, cfg.Committers)}
	for range cfg.Committers {
		r.wg.Add(1)
		go r.commit()
	}
	return r
}

// Record stores one request's events and returns what happened to each.
// The error is a *store.QuotaError, ErrClosed, the context's error, or a
// database failure; on any error nothing of the request was stored, except
// that a cancelled caller may not learn of a commit that still happened.
func (r *Recorder) Record(ctx context.Context, req *store.RecordRequest) (store.RecordOutcome, error) {
	if r.cfg.Catalog != nil {
		refusedAll, err := checkCatalog(ctx, r.cfg.Catalog, req)
		if err != nil {
			return store.RecordOutcome{}, err
		}
		if refusedAll {
			return refusedOutcome(req), nil
		}
	}
	d := r.quota.decide(req)
	if d.route == routeAlone {
		release, err := r.quota.takeTurn(ctx, req.WorkspaceID)
		if err != nil {
			r.quota.observe(req, d, 0, err)
			return store.RecordOutcome{}, err
		}
		// The request before may have taught the gate enough to route this
		// one otherwise (the first requests of a workspace all wait here
		// for the first answer).
		if !d.probe {
			d = r.quota.decide(req)
		}
		if d.route == routeAlone {
			defer release()
			return r.recordAlone(ctx, req, d)
		}
		release()
	}
	if d.route == routeRefuse {
		return store.RecordOutcome{}, d.err
	}
	if len(req.Events) >= r.cfg.DirectEvents {
		return r.recordAlone(ctx, req, d)
	}
	p := &pending{req: req, quota: d, ready: make(chan struct{})}
	r.mu.RLock()
	if r.done {
		r.mu.RUnlock()
		return store.RecordOutcome{}, ErrClosed
	}
	select {
	case r.queue <- p:
	case <-ctx.Done():
		r.mu.RUnlock()
		return store.RecordOutcome{}, ctx.Err()
	}
	r.mu.RUnlock()
	select {
	case <-p.ready:
		return p.outcome, p.err
	case <-ctx.Done():
		return store.RecordOutcome{}, ctx.Err()
	}
}

// recordAlone commits one request in a transaction of its own, as batches
// and requests near their workspace's cap do.
func (r *Recorder) recordAlone(ctx context.Context, req *store.RecordRequest, d quotaDecision) (store.RecordOutcome, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	select {
	case r.direct <- struct{}{}:
	case <-ctx.Done():
		r.quota.observe(req, d, 0, ctx.Err())
		return store.RecordOutcome{}, ctx.Err()
	}
	defer func() { <-r.direct }()
	out, err := r.store.Record(ctx, []*store.RecordRequest{req})
	if err != nil {
		r.quota.observe(req, d, 0, err)
		return store.RecordOutcome{}, err
	}
	r.quota.observe(req, d, out[0].Tracked, nil)
	r.notify(out)
	return out[0], nil
}

// Close stops taking requests and waits for those queued to commit.
func (r *Recorder) Close() {
	r.once.Do(func() {
		r.mu.Lock()
		r.done = true
		close(r.queue)
		r.mu.Unlock()
		r.wg.Wait()
	})
}

func (r *Recorder) commit() {
	defer r.wg.Done()
	for first := range r.queue {
		group := []*pending{first}
		events := len(first.req.Events)
	fill:
		for events < r.cfg.MaxGroupEvents {
			select {
			case p, ok := <-r.queue:
				if !ok {
					break fill
				}
				group = append(group, p)
				events += len(p.req.Events)
			default:
				break fill
			}
		}
		r.flush(group)
	}
}

// flush writes a group in one transaction. If that fails, one request may
// be at fault (over its quota, say), so each is retried alone and gets its
// own answer.
func (r *Recorder) flush(group []*pending) {
	// The group outlives any one caller, so no caller's context governs it.
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
	defer cancel()
	reqs := make([]*store.RecordRequest, len(group))
	for i, p := range group {
		reqs[i] = p.req
	}
	outs, err := r.store.Record(ctx, reqs)
	if err == nil {
		r.notify(outs)
	}
	if err == nil || len(group) == 1 {
		for i, p := range group {
			if err != nil {
				p.err = err
				r.quota.observe(p.req, p.quota, 0, err)
			} else {
				p.outcome = outs[i]
				r.quota.observe(p.req, p.quota, outs[i].Tracked, nil)
			}
			close(p.ready)
		}
		return
	}
	for _, p := range group {
		outs, err := r.store.Record(ctx, []*store.RecordRequest{p.req})
		if err != nil {
			p.err = err
			r.quota.observe(p.req, p.quota, 0, err)
		} else {
			p.outcome = outs[0]
			r.quota.observe(p.req, p.quota, outs[0].Tracked, nil)
			r.notify(outs)
		}
		close(p.ready)
	}
}

// notify wakes delivery when a commit wrote intents.
func (r *Recorder) notify(outs []store.RecordOutcome) {
	if r.cfg.OnIntents == nil {
		return
	}
	for _, o := range outs {
		if o.Intents > 0 {
			r.cfg.OnIntents()
			return
		}
	}
}

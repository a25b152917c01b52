package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/signalbox/signalbox/store"
)

// bench is one run: the throwaway database, the API process and the
// workload, set up once and measured phase by phase.
type bench struct {
	cfg      config
	progress io.Writer
	getenv   func(string) string

	dbName  string
	dbURL   string
	harness *pgxpool.Pool
	tmpDir  string
	// bin is the signalbox binary the APIs run.
	bin       string
	api       *apiProcess
	client    *apiClient
	w         *workload
	cpu       *cpuSampler
	pgVersion string
	indexes   int

	// neighbours are the other workspaces of the noisy-neighbour phase.
	neighbours *neighbours
}

// logf reports progress on stderr, apart from the results.
func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.progress, "signalbox-bench: "+format+"\n", args...)
}

// setup makes the database, the workspace, the API process and the
// contacts.
func (b *bench) setup(ctx context.Context) error {
	var err error
	if b.dbName, b.dbURL, err = store.CreateScratchDatabase(ctx, b.cfg.databaseURL, "signalbox_bench_"); err != nil {
		return err
	}
	b.logf("created database %s", b.dbName)
	st, err := store.Open(ctx, b.dbURL, store.Config{MaxConns: 2})
	if err != nil {
		return err
	}
	defer st.Close()
	ws, key, err := st.CreateWorkspace(ctx, "bench", store.PlanEnterprise)
	if err != nil {
		return fmt.Errorf("create workspace: %w", err)
	}
	if b.harness, err = pgxpool.New(ctx, b.dbURL); err != nil {
		return err
	}
	b.pgVersion = serverVersion(ctx, b.harness)
	if b.indexes, _, err = createBaselineTable(ctx, b.harness); err != nil {
		return err
	}

	bin := b.cfg.signalbox
	if b.tmpDir, err = os.MkdirTemp("", "signalbox-bench-"); err != nil {
		return err
	}
	if bin == "" {
		b.logf("building cmd/signalbox")
		if bin, err = buildSignalbox(ctx, b.tmpDir, b.cfg.pprofDir != ""); err != nil {
			return err
		}
	}
	b.bin = bin
	if b.api, err = startAPI(bin, b.dbURL, b.getenv, b.cfg.pprofDir != ""); err != nil {
		return err
	}
	// The open-loop phase may have up to 4 × clients requests in flight,
	// the noisy-neighbour phase 2 × its clients.
	conns := max(4*b.cfg.clients, 2*b.cfg.noisyClients)
	b.w = newWorkload(b.cfg.contacts, b.cfg.batchSize)
	b.client = &apiClient{http: newHTTPClient(conns), base: "http://" + b.api.addr, key: key.Secret, w: b.w}
	if err := b.api.waitReady(ctx, b.client.http, 30*time.Second); err != nil {
		return err
	}
	b.cpu = &cpuSampler{apiPID: b.api.pid()}
	b.logf("api pid %d on %s; creating %d contacts", b.api.pid(), b.api.addr, b.cfg.contacts)

	for i, body := range contactBatches(b.cfg.contacts) {
		if _, err := b.client.sendBatch(ctx, body, min(1000, b.cfg.contacts-i*1000)); err != nil {
			return fmt.Errorf("create contacts: %w", err)
		}
	}
	ids, err := contactIDs(ctx, b.harness, ws.ID)
	if err != nil {
		return fmt.Errorf("read contacts: %w", err)
	}
	if err := b.w.resolve(ws.ID, ids); err != nil {
		return err
	}
	if b.cfg.phases["noisy"] {
		return b.setupNoisy(ctx, st)
	}
	return nil
}

// cleanup stops the API and drops the database, also after Ctrl-C.
func (b *bench) cleanup() {
	b.api.stop(20 * time.Second)
	if b.harness != nil {
		b.harness.Close()
	}
	if b.dbName != "" {
		if err := store.DropDatabase(b.cfg.databaseURL, b.dbName); err != nil {
			b.logf("could not drop database %s: %v", b.dbName, err)
		} else {
			b.logf("dropped database %s", b.dbName)
		}
	}
	if b.tmpDir != "" {
		_ = os.RemoveAll(b.tmpDir)
	}
}

// side is one half of a comparison.
type side struct {
	name string
	run  func(ctx context.Context) (throughput, error)
}

// pairSpec is a phase: a baseline and the signalbox path at one concurrency.
type pairSpec struct {
	name    string
	key     string
	clients int
	target  float64
	api     op
}

// measure runs every phase and returns the report.
func (b *bench) measure(ctx context.Context) (*report, error) {
	rep := &report{CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Postgres: b.pgVersion,
		Duration: b.cfg.duration.String(), Warmup: b.cfg.warmup.String(), Clients: b.cfg.clients,
		BatchSize: b.cfg.batchSize, Contacts: b.cfg.contacts, Rounds: b.cfg.rounds, Indexes: b.indexes}
	specs := []pairSpec{{
		name: fmt.Sprintf("single events, %d clients", b.cfg.clients), key: "single", clients: b.cfg.clients, target: 0.5,
		api: b.client.single,
	}, {
		name: fmt.Sprintf("batches of %d, 1 client", b.cfg.batchSize), key: "batch1", clients: 1, target: 0.5,
		api: b.client.batch,
	}}
	if b.cfg.batchClients > 1 {
		specs = append(specs, pairSpec{
			name: fmt.Sprintf("batches of %d, %d clients", b.cfg.batchSize, b.cfg.batchClients), key: "batchN",
			clients: b.cfg.batchClients, target: 0.5, api: b.client.batch,
		})
	}
	specs = slices.DeleteFunc(specs, func(s pairSpec) bool { return !b.cfg.phases[s.key] })
	rep.Phases = make([]phaseReport, len(specs))
	for i, s := range specs {
		rep.Phases[i] = phaseReport{Name: s.name, Key: s.key, Clients: s.clients, Target: s.target}
	}
	for round := range b.cfg.rounds {
		for i, s := range specs {
			// Alternate which side goes first, so slow drift of the machine
			// does not always favour the same side.
			var run pairRun
			sides := []side{
				{"baseline", func(ctx context.Context) (throughput, error) { return b.runBaseline(ctx, s) }},
				{"signalbox", func(ctx context.Context) (throughput, error) { return b.runSignalbox(ctx, s, round) }},
			}
			if round%2 == 1 {
				slices.Reverse(sides)
			}
			for _, sd := range sides {
				b.logf("round %d/%d: %s: %s", round+1, b.cfg.rounds, s.name, sd.name)
				t, err := sd.run(ctx)
				if err != nil {
					return nil, err
				}
				rep.addErrors(t.Errors, t.first)
				if sd.name == "baseline" {
					run.Baseline = t
				} else {
					run.Signalbox = t
				}
				if err := b.check(ctx); err != nil {
					return nil, err
				}
			}
			rep.Phases[i].Runs = append(rep.Phases[i].Runs, run)
		}
	}
	for i := range rep.Phases {
		rep.Phases[i].summarise()
	}

	// Latency at half the signalbox path's measured maximum single-event rate.
	if b.cfg.phases["latency"] && rep.Phases[0].Signalbox >= 2 {
		var err error
		if rep.Latency, err = b.measureLatency(ctx, rep.Phases[0].Signalbox/2); err != nil {
			return nil, err
		}
		rep.addErrors(rep.Latency.Baseline.Errors, rep.Latency.Baseline.first)
		rep.addErrors(rep.Latency.Signalbox.Errors, rep.Latency.Signalbox.first)
	}

	if b.cfg.phases["noisy"] {
		var err error
		if rep.Noisy, err = b.measureNoisy(ctx); err != nil {
			return nil, err
		}
		for _, r := range rep.Noisy.Runs {
			for _, t := range []throughput{r.Alone, r.BesideUnder, r.Under, r.BesideOver, r.Over} {
				rep.addErrors(t.Errors, t.first)
			}
		}
	}

	if b.cfg.phases["sources"] {
		var err error
		if rep.Sources, err = b.measureSources(ctx); err != nil {
			return nil, err
		}
		for _, r := range rep.Sources.Runs {
			rep.addErrors(r.Events.Errors, r.Events.first)
			rep.addErrors(r.Inbound.Errors, r.Inbound.first)
		}
	}

	if b.cfg.phases["catalog"] {
		var err error
		if rep.Catalog, err = b.measureCatalog(ctx); err != nil {
			return nil, err
		}
		for _, p := range []catalogPair{rep.Catalog.Schema, rep.Catalog.Counters} {
			for _, r := range p.Runs {
				rep.addErrors(r.With.Errors, r.With.first)
				rep.addErrors(r.Without.Errors, r.Without.first)
			}
		}
	}

	if b.cfg.phases["decisions"] {
		var err error
		if rep.Decisions, err = b.measureDecisions(ctx); err != nil {
			return nil, err
		}
		for _, r := range rep.Decisions.Runs {
			rep.addErrors(r.Kept.Errors, r.Kept.first)
			rep.addErrors(r.Skipped.Errors, r.Skipped.first)
		}
	}

	hwm, err := b.api.peakRSS()
	if err != nil {
		return nil, fmt.Errorf("read API peak RSS: %w", err)
	}
	rep.APIPeakRSSMiB = float64(hwm) / (1 << 20)
	return rep, nil
}

// measureLatency runs the open-loop single-event phase at rate, first with
// raw pgx, then through the API.
func (b *bench) measureLatency(ctx context.Context, rate float64) (*latencyReport, error) {
	rep := &latencyReport{Rate: rate}
	maxInflight := 4 * b.cfg.clients
	b.logf("latency at %.0f events/s: baseline", rate)
	if err := truncateEvents(ctx, b.harness); err != nil {
		return nil, err
	}
	pool, err := openBaselinePool(ctx, b.dbURL, b.cfg.clients)
	if err != nil {
		return nil, err
	}
	base := &baseline{pool: pool, w: b.w}
	rep.Baseline = openLoop(ctx, rate, b.cfg.warmup, b.cfg.duration, maxInflight, b.cpu, base.single)
	pool.Close()
	if rep.Baseline.PerCommit, err = eventsPerCommit(ctx, b.harness, "bench_events"); err != nil {
		return nil, err
	}

	b.logf("latency at %.0f events/s: signalbox", rate)
	if err := truncateEvents(ctx, b.harness); err != nil {
		return nil, err
	}
	rep.Signalbox = openLoop(ctx, rate, b.cfg.warmup, b.cfg.duration, maxInflight, b.cpu, b.client.single)
	if rep.Signalbox.PerCommit, err = eventsPerCommit(ctx, b.harness, "events"); err != nil {
		return nil, err
	}
	return rep, b.check(ctx)
}

// runBaseline measures the raw pgx side of a phase on its own pool.
func (b *bench) runBaseline(ctx context.Context, s pairSpec) (throughput, error) {
	if err := truncateEvents(ctx, b.harness); err != nil {
		return throughput{}, err
	}
	pool, err := openBaselinePool(ctx, b.dbURL, s.clients)
	if err != nil {
		return throughput{}, err
	}
	defer pool.Close()
	base := &baseline{pool: pool, w: b.w}
	fn := base.single
	if s.key != "single" {
		fn = base.batch
	}
	t := closedLoop(ctx, s.clients, b.cfg.warmup, b.cfg.duration, b.cpu, fn, nil)
	t.PerCommit, err = eventsPerCommit(ctx, b.harness, "bench_events")
	return t, err
}

// runSignalbox measures the API side of a phase, profiling it in the
// first round when -pprof is set.
func (b *bench) runSignalbox(ctx context.Context, s pairSpec, round int) (throughput, error) {
	if err := truncateEvents(ctx, b.harness); err != nil {
		return throughput{}, err
	}
	var (
		onMeasure func()
		profErr   = make(chan error, 1)
	)
	if b.cfg.pprofDir != "" && round == 0 {
		file := filepath.Join(b.cfg.pprofDir, s.key+".pprof")
		if err := os.MkdirAll(b.cfg.pprofDir, 0o755); err != nil {
			return throughput{}, err
		}
		onMeasure = func() {
			go func() { profErr <- b.api.cpuProfile(ctx, int(b.cfg.duration.Seconds()), file) }()
		}
		defer func() {
			if err := <-profErr; err != nil {
				b.logf("cpu profile: %v", err)
			} else {
				b.logf("cpu profile of the API saved to %s", file)
			}
		}()
	}
	t := closedLoop(ctx, s.clients, b.cfg.warmup, b.cfg.duration, b.cpu, s.api, onMeasure)
	var err error
	t.PerCommit, err = eventsPerCommit(ctx, b.harness, "events")
	return t, err
}

// check fails the run when it was interrupted or the API died.
func (b *bench) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	if !b.api.alive() {
		return errors.New("signalbox api exited during the run:\n" + b.api.logTail())
	}
	return nil
}

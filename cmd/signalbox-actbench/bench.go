package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"
)

// bench runs the phases on one system and gathers the report.
type bench struct {
	s        *system
	o        options
	progress io.Writer
	fail     failures
	// act is the workspace of the act phases (actTenant).
	act *tenant
}

// measure runs every chosen phase in order.
func (b *bench) measure(ctx context.Context) (*report, error) {
	rep := &report{Duration: b.o.duration.String(), Clients: b.o.clients, Rate: b.o.rate,
		TemporalDB: b.o.temporalDB, PostgreSQL: b.s.pgVersion, CPUs: numCPU(),
		Automations: b.o.automations, Waits: b.o.waits, Workers: b.o.workers}
	if b.o.temporalAddress != "" {
		rep.Server = "Temporal server at " + b.o.temporalAddress + " (PostgreSQL persistence)"
	}
	if b.o.profileDir != "" {
		if err := os.MkdirAll(b.o.profileDir, 0o755); err != nil {
			return nil, err
		}
	}
	steps := []struct {
		name string
		run  func(context.Context, *report) error
	}{
		{"start", b.startPhase},
		{"latency", b.latencyPhase},
		{"resume", b.resumePhase},
		{"ingest", b.ingestPhase},
		{"drain", b.drainPhase},
	}
	for _, st := range steps {
		if !b.o.phases[st.name] {
			continue
		}
		if err := st.run(ctx, rep); err != nil {
			return nil, fmt.Errorf("%s phase: %w", st.name, err)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	rep.Errors, rep.FirstError = b.fail.n.Load(), b.fail.firstError()
	return rep, nil
}

// logf prints a progress line.
func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.progress, "  "+format+"\n", args...)
}

// profile starts a CPU profile of this process named for the run, if asked
// for, and returns the function that stops it.
func (b *bench) profile(name string) func() {
	if b.o.profileDir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(b.o.profileDir, name+".pprof"))
	if err != nil {
		b.logf("cpu profile %s: %v", name, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.logf("cpu profile %s: %v", name, err)
		_ = f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// watchWindow samples CPU and starts the CPU profile when the warm-up
// ends; the function it returns stops both and says how busy the machine
// was in between.
func (b *bench) watchWindow(ctx context.Context, name string) func() cpuUsage {
	ready := make(chan struct{})
	var start cpuSample
	stop := func() {}
	go func() {
		defer close(ready)
		select {
		case <-time.After(b.o.warmup):
		case <-ctx.Done():
		}
		start = sampleCPU(b.s.devPID)
		stop = b.profile(name)
	}()
	return func() cpuUsage {
		<-ready
		stop()
		return start.usage(sampleCPU(b.s.devPID))
	}
}

// withWorker runs f with -workers workers of the kind polling (each with
// its own pollers, as separate processes would have), stopping them after.
func (b *bench) withWorker(kind workerKind, f func() error) error {
	for range b.o.workers {
		w, err := b.s.startWorker(kind)
		if err != nil {
			return err
		}
		defer w.Stop()
	}
	return f()
}

// drain waits until every workflow the probe saw start has returned, and
// says how long that took.
func (b *bench) drain(ctx context.Context, want func() int) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(b.o.timeout)
	for {
		started, done := want(), b.s.probe.count(markDone, time.Time{}, time.Time{})
		if done >= started {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("only %d of %d workflows finished within %s", done, started, b.o.timeout)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func numCPU() int { return runtime.NumCPU() }

// waitUntil polls cond until it holds, failing after the timeout.
func (b *bench) waitUntil(ctx context.Context, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(b.o.timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not done within %s", what, b.o.timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

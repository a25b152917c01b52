package main

import (
	"time"

	"github.com/signalbox/signalbox/procstat"
)

// Where the machine's CPU time goes during a measured run, from /proc:
// this process (load generator, API, recorder, dispatcher, workers), the
// Temporal dev server, every PostgreSQL process, and the rest. It shows
// what a side was bound by, and the dev server's CPU time per workflow is
// the plainest evidence of what an enrollment costs Temporal.

// cpuSample is a reading of cumulative CPU ticks.
type cpuSample struct {
	at                       time.Time
	busy                     uint64
	self, temporal, postgres uint64
	ok                       bool
}

// cpuUsage is the average number of cores busy over an interval, and the
// CPU seconds the dev server used in it.
type cpuUsage struct {
	Bench       float64 `json:"bench"`
	Temporal    float64 `json:"temporal"`
	Postgres    float64 `json:"postgres"`
	Other       float64 `json:"other"`
	TemporalSec float64 `json:"temporal_cpu_seconds"`
	BenchSec    float64 `json:"bench_cpu_seconds"`
	PostgresSec float64 `json:"postgres_cpu_seconds"`
}

// sampleCPU reads the counters now; without /proc it returns a sample that
// yields zero usage.
func sampleCPU(temporalPID int) cpuSample {
	s := cpuSample{at: time.Now()}
	busy, err := procstat.MachineBusy()
	if err != nil {
		return s
	}
	s.busy, s.ok = busy, true
	s.self, s.postgres = procstat.SelfTicks(), procstat.PostgresTicks()
	if temporalPID > 0 {
		s.temporal = procstat.Ticks(temporalPID)
	}
	return s
}

// usage is what was used between s and a later sample.
func (s cpuSample) usage(later cpuSample) cpuUsage {
	secs := later.at.Sub(s.at).Seconds()
	if !s.ok || !later.ok || secs <= 0 {
		return cpuUsage{}
	}
	diff := func(a, b uint64) float64 {
		if b < a {
			return 0 // a process went away; its ticks left with it
		}
		return float64(b-a) / procstat.ClockTicks
	}
	u := cpuUsage{BenchSec: diff(s.self, later.self), TemporalSec: diff(s.temporal, later.temporal),
		PostgresSec: diff(s.postgres, later.postgres)}
	u.Bench, u.Temporal, u.Postgres = u.BenchSec/secs, u.TemporalSec/secs, u.PostgresSec/secs
	u.Other = max(diff(s.busy, later.busy)/secs-u.Bench-u.Temporal-u.Postgres, 0)
	return u
}

// plus adds two usages field by field.
func (u cpuUsage) plus(v cpuUsage) cpuUsage {
	return cpuUsage{Bench: u.Bench + v.Bench, Temporal: u.Temporal + v.Temporal, Postgres: u.Postgres + v.Postgres,
		Other: u.Other + v.Other, TemporalSec: u.TemporalSec + v.TemporalSec, BenchSec: u.BenchSec + v.BenchSec,
		PostgresSec: u.PostgresSec + v.PostgresSec}
}

// scaled multiplies every field by k (to weigh a window by its length).
func (u cpuUsage) scaled(k float64) cpuUsage {
	return cpuUsage{Bench: u.Bench * k, Temporal: u.Temporal * k, Postgres: u.Postgres * k, Other: u.Other * k,
		TemporalSec: u.TemporalSec * k, BenchSec: u.BenchSec * k, PostgresSec: u.PostgresSec * k}
}

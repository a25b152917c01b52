package main

import (
	"runtime"
	"time"

	"github.com/signalbox/signalbox/procstat"
)

// cpuSampler reads where the machine's CPU time goes, from /proc: the API
// process, this process (the load generator and the baseline's client),
// every PostgreSQL process, and the rest of the machine. It shows which of
// them a phase was bound by; on a shared machine "other" is the neighbours.
type cpuSampler struct {
	apiPID int
}

// cpuSample is a reading of cumulative CPU ticks.
type cpuSample struct {
	at                  time.Time
	busy                uint64
	api, self, postgres uint64
	ok                  bool
}

// cpuUsage is the average number of cores busy over an interval.
type cpuUsage struct {
	API      float64 `json:"api"`
	Bench    float64 `json:"bench"`
	Postgres float64 `json:"postgres"`
	Other    float64 `json:"other"`
	Idle     float64 `json:"idle"`
}

// sample reads the counters now; a sampler that cannot read /proc returns
// a sample that yields zero usage.
func (c *cpuSampler) sample() cpuSample {
	s := cpuSample{at: time.Now()}
	if c == nil {
		return s
	}
	busy, err := procstat.MachineBusy()
	if err != nil {
		return s
	}
	s.busy, s.ok = busy, true
	if c.apiPID > 0 {
		s.api = procstat.Ticks(c.apiPID)
	}
	s.self, s.postgres = procstat.SelfTicks(), procstat.PostgresTicks()
	return s
}

// usage is the cores busy between s and a later sample.
func (s cpuSample) usage(later cpuSample) cpuUsage {
	secs := later.at.Sub(s.at).Seconds()
	if !s.ok || !later.ok || secs <= 0 {
		return cpuUsage{}
	}
	cores := func(a, b uint64) float64 {
		if b < a {
			return 0 // a process went away; its ticks left with it
		}
		return float64(b-a) / procstat.ClockTicks / secs
	}
	u := cpuUsage{API: cores(s.api, later.api), Bench: cores(s.self, later.self), Postgres: cores(s.postgres, later.postgres)}
	busy := cores(s.busy, later.busy)
	u.Other = max(0, busy-u.API-u.Bench-u.Postgres)
	u.Idle = max(0, float64(runtime.NumCPU())-busy)
	return u
}

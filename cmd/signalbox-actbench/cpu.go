package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Where the machine's CPU time goes during a measured run, from /proc:
// this process (load generator, API, recorder, dispatcher, workers), the
// Temporal dev server, every PostgreSQL process, and the rest. It shows
// what a side was bound by, and the dev server's CPU time per workflow is
// the plainest evidence of what an enrollment costs Temporal.

// clockTicks is USER_HZ, the unit of /proc CPU times.
const clockTicks = 100

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
	busy, err := machineBusy()
	if err != nil {
		return s
	}
	s.busy, s.ok = busy, true
	s.self, _, _ = processTicks("self")
	if temporalPID > 0 {
		s.temporal, _, _ = processTicks(strconv.Itoa(temporalPID))
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		if t, comm, err := processTicks(e.Name()); err == nil && (comm == "postgres" || comm == "postmaster") {
			s.postgres += t
		}
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
		return float64(b-a) / clockTicks
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

// machineBusy is the machine's non-idle ticks, from /proc/stat.
func machineBusy() (uint64, error) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(raw, []byte("\n"))
	f := strings.Fields(string(line))
	var busy uint64
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		// user nice system idle iowait irq softirq steal guest guest_nice;
		// guests are already counted in user and nice.
		if i != 3 && i != 4 && i < 8 {
			busy += n
		}
	}
	return busy, nil
}

// processTicks reads a process's user+system ticks and its command name.
func processTicks(pid string) (uint64, string, error) {
	raw, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return 0, "", err
	}
	open, end := bytes.IndexByte(raw, '('), bytes.LastIndexByte(raw, ')')
	if open < 0 || end < open {
		return 0, "", os.ErrInvalid
	}
	comm := string(raw[open+1 : end])
	f := strings.Fields(string(raw[end+1:]))
	// After the command: state ppid ... utime is field 14 of the line,
	// index 11 here; stime follows.
	if len(f) < 13 {
		return 0, comm, os.ErrInvalid
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return u + st, comm, nil
}

// childPID finds a child process of this one by command name, or 0.
func childPID(comm string) int {
	self := strconv.Itoa(os.Getpid())
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		open, end := bytes.IndexByte(raw, '('), bytes.LastIndexByte(raw, ')')
		if open < 0 || end < open || string(raw[open+1:end]) != comm {
			continue
		}
		if f := strings.Fields(string(raw[end+1:])); len(f) > 1 && f[1] == self {
			pid, _ := strconv.Atoi(e.Name())
			return pid
		}
	}
	return 0
}

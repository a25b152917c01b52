package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc CPU times; 100 on every Linux
// build that matters here.
const clockTicks = 100

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
	busy, err := machineBusy()
	if err != nil {
		return s
	}
	s.busy, s.ok = busy, true
	if c.apiPID > 0 {
		s.api, _, _ = processTicks(strconv.Itoa(c.apiPID))
	}
	s.self, _, _ = processTicks("self")
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
		return float64(b-a) / clockTicks / secs
	}
	u := cpuUsage{API: cores(s.api, later.api), Bench: cores(s.self, later.self), Postgres: cores(s.postgres, later.postgres)}
	busy := cores(s.busy, later.busy)
	u.Other = max(0, busy-u.API-u.Bench-u.Postgres)
	u.Idle = max(0, float64(runtime.NumCPU())-busy)
	return u
}

// machineBusy sums the non-idle ticks of all CPUs from /proc/stat.
func machineBusy() (uint64, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	fields := strings.Fields(string(line))
	var busy uint64
	// user nice system idle iowait irq softirq steal (guest time is already in user).
	for i := 1; i < len(fields) && i <= 8; i++ {
		if i == 4 || i == 5 {
			continue
		}
		v, err := strconv.ParseUint(fields[i], 10, 64)
		if err != nil {
			return 0, err
		}
		busy += v
	}
	return busy, nil
}

// processTicks returns utime+stime of /proc/PID/stat and the command name.
func processTicks(pid string) (uint64, string, error) {
	data, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return 0, "", err
	}
	open, end := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
	if open < 0 || end < open {
		return 0, "", os.ErrInvalid
	}
	comm := string(data[open+1 : end])
	// After "pid (comm) " come state (field 3) ... utime (14) and stime (15).
	fields := strings.Fields(string(data[end+1:]))
	if len(fields) < 13 {
		return 0, "", os.ErrInvalid
	}
	ut, err1 := strconv.ParseUint(fields[11], 10, 64)
	st, err2 := strconv.ParseUint(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, "", os.ErrInvalid
	}
	return ut + st, comm, nil
}

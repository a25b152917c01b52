// Package procstat reads CPU time from Linux's /proc for the benchmark
// commands, which report where a run's CPU went (the process under load,
// PostgreSQL, the Temporal dev server, the rest of the machine) beside
// their figures. Off Linux every reader fails and the callers report zero.
package procstat

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ClockTicks is USER_HZ, the unit of /proc CPU times; 100 on every Linux
// build that matters here.
const ClockTicks = 100

// MachineBusy is the machine's non-idle ticks so far, from /proc/stat.
func MachineBusy() (uint64, error) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(raw, []byte("\n"))
	return parseBusy(string(line))
}

// parseBusy sums the busy columns of /proc/stat's "cpu" line: user nice
// system irq softirq steal, leaving out idle and iowait; guest time is
// already counted in user and nice.
func parseBusy(line string) (uint64, error) {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, os.ErrInvalid
	}
	var busy uint64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, os.ErrInvalid
		}
		busy += n
	}
	return busy, nil
}

// Process is what /proc/PID/stat says of a process.
type Process struct {
	Comm  string
	PPID  int
	Ticks uint64 // user + system
}

// Read reads a process's stat; pid may be "self".
func Read(pid string) (Process, error) {
	raw, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return Process{}, err
	}
	return parseStat(raw)
}

// parseStat reads "pid (comm) state ppid ... utime stime ...". The command
// may hold spaces and parentheses, so it runs to the last ')'.
func parseStat(raw []byte) (Process, error) {
	open, end := bytes.IndexByte(raw, '('), bytes.LastIndexByte(raw, ')')
	if open < 0 || end < open {
		return Process{}, os.ErrInvalid
	}
	p := Process{Comm: string(raw[open+1 : end])}
	// After the command: state (field 3 of the line) is index 0 here, ppid
	// index 1, utime (field 14) index 11, stime index 12.
	f := strings.Fields(string(raw[end+1:]))
	if len(f) < 13 {
		return Process{}, os.ErrInvalid
	}
	ppid, err0 := strconv.Atoi(f[1])
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err0 != nil || err1 != nil || err2 != nil {
		return Process{}, os.ErrInvalid
	}
	p.PPID, p.Ticks = ppid, ut+st
	return p, nil
}

// Ticks is a process's user+system ticks so far, 0 if it cannot be read.
func Ticks(pid int) uint64 {
	p, err := Read(strconv.Itoa(pid))
	if err != nil {
		return 0
	}
	return p.Ticks
}

// SelfTicks is this process's user+system ticks so far.
func SelfTicks() uint64 {
	p, _ := Read("self")
	return p.Ticks
}

// Each calls fn for every process it can read.
func Each(fn func(pid int, p Process)) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, err := Read(e.Name()); err == nil {
			fn(pid, p)
		}
	}
}

// PostgresTicks is the ticks of every PostgreSQL process on the machine.
func PostgresTicks() uint64 {
	var sum uint64
	Each(func(_ int, p Process) {
		if p.Comm == "postgres" || p.Comm == "postmaster" {
			sum += p.Ticks
		}
	})
	return sum
}

// ChildPID finds a child of this process by command name, or 0.
func ChildPID(comm string) int {
	self, found := os.Getpid(), 0
	Each(func(pid int, p Process) {
		if found == 0 && p.Comm == comm && p.PPID == self {
			found = pid
		}
	})
	return found
}

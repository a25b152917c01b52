package main

import (
	"math"
	"slices"
	"sync"
	"time"
)

// latencies collects samples from concurrent goroutines.
type latencies struct {
	mu sync.Mutex
	ds []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.ds = append(l.ds, d)
	l.mu.Unlock()
}

// summary is what the report shows of a set of latencies, in milliseconds.
type summary struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

func (l *latencies) summary() summary {
	l.mu.Lock()
	defer l.mu.Unlock()
	return summarize(l.ds)
}

// summarize computes the summary of samples (which it sorts).
func summarize(ds []time.Duration) summary {
	if len(ds) == 0 {
		return summary{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return summary{N: len(ds), P50: ms(percentile(ds, 50)), P99: ms(percentile(ds, 99)), Max: ms(ds[len(ds)-1]),
		Mean: ms(sum / time.Duration(len(ds)))}
}

// percentile is the nearest-rank p-th percentile of sorted samples: the
// smallest sample with at least p% of the samples at or below it. It is
// zero for no samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ratio is a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// mean is the arithmetic mean, 0 for none.
func mean(xs ...float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// stages collects the samples of the stages a latency breaks into, in the
// order they are first added.
type stages struct {
	mu    sync.Mutex
	order []string
	by    map[string]*latencies
}

// add adds a sample to a stage.
func (s *stages) add(name string, d time.Duration) {
	s.mu.Lock()
	if s.by == nil {
		s.by = map[string]*latencies{}
	}
	l := s.by[name]
	if l == nil {
		l = &latencies{}
		s.by[name] = l
		s.order = append(s.order, name)
	}
	s.mu.Unlock()
	l.add(d)
}

// stage is one stage's summary.
type stage struct {
	Name string `json:"name"`
	summary
}

// summaries lists the stages in order.
func (s *stages) summaries() []stage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]stage, 0, len(s.order))
	for _, name := range s.order {
		out = append(out, stage{Name: name, summary: s.by[name].summary()})
	}
	return out
}

package main

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"
)

// scheduledAt is when request i of an open-loop run at rate per second is
// due. It is computed from start, never accumulated, so it does not drift.
func scheduledAt(start time.Time, rate float64, i int64) time.Time {
	return start.Add(time.Duration(float64(i) * float64(time.Second) / rate))
}

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of
// sorted values, 0 when there are none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// latencies summarises an open-loop run.
type latencies struct {
	Rate     float64       `json:"rate"`
	Achieved float64       `json:"achieved_rate"`
	Count    int           `json:"count"`
	P50      time.Duration `json:"p50_ns"`
	P90      time.Duration `json:"p90_ns"`
	P99      time.Duration `json:"p99_ns"`
	Max      time.Duration `json:"max_ns"`
	Errors   int64         `json:"errors"`
	CPU      cpuUsage      `json:"cpu"`
	// PerCommit is the mean number of events per transaction.
	PerCommit float64 `json:"events_per_commit"`
	first     string
}

// openLoop sends requests on a fixed schedule at rate per second, for
// warmup and then d, each on its own goroutine, whatever happened to the
// earlier ones. A request's latency runs from when it was due, not from when
// it was sent, so queueing anywhere (here, in the client, the server or the
// database) counts and cannot hide behind slow answers (coordinated
// omission). At most maxInflight requests run at once; one that waits for a
// slot is late, and that lateness is part of its latency.
func openLoop(ctx context.Context, rate float64, warmup, d time.Duration, maxInflight int, cpu *cpuSampler, fn op) latencies {
	var (
		mu   sync.Mutex
		lats []time.Duration
		errs errorCount
		wg   sync.WaitGroup
		sem  = make(chan struct{}, maxInflight)
	)
	start := time.Now().Add(10 * time.Millisecond)
	warmN := int64(warmup.Seconds() * rate)
	total := warmN + int64(d.Seconds()*rate)
	var before cpuSample
	for i := int64(0); i < total && ctx.Err() == nil; i++ {
		due := scheduledAt(start, rate, i)
		if wait := time.Until(due); wait > 0 {
			sleep(ctx, wait)
		}
		if i == warmN {
			before = cpu.sample()
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := fn(ctx, i)
			took := time.Since(due)
			<-sem
			if i < warmN {
				if err != nil && ctx.Err() == nil {
					errs.add(err)
				}
				return
			}
			if err != nil {
				if ctx.Err() == nil {
					errs.add(err)
				}
				return
			}
			mu.Lock()
			lats = append(lats, took)
			mu.Unlock()
		}()
	}
	end := scheduledAt(start, rate, total)
	wg.Wait()
	after := cpu.sample()
	slices.Sort(lats)
	window := end.Sub(scheduledAt(start, rate, warmN))
	res := latencies{Rate: rate, Count: len(lats), Errors: errs.n.Load(), first: errs.firstError(),
		P50: percentile(lats, 50), P90: percentile(lats, 90), P99: percentile(lats, 99)}
	if len(lats) > 0 {
		res.Max = lats[len(lats)-1]
		res.Achieved = float64(len(lats)) / window.Seconds()
	}
	res.CPU = before.usage(after)
	return res
}

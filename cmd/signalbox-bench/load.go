package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// op performs request seq and says how many events it recorded.
type op func(ctx context.Context, seq int64) (events int, err error)

// errorCount counts failures and keeps the first one.
type errorCount struct {
	n     atomic.Int64
	mu    sync.Mutex
	first error
}

func (e *errorCount) add(err error) {
	if e.n.Add(1) == 1 {
		e.mu.Lock()
		e.first = err
		e.mu.Unlock()
	}
}

func (e *errorCount) firstError() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.first == nil {
		return ""
	}
	return e.first.Error()
}

// throughput is what a closed-loop run measured.
type throughput struct {
	Events   int64         `json:"events"`
	Requests int64         `json:"requests"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	Errors   int64         `json:"errors"`
	CPU      cpuUsage      `json:"cpu"`
	// PerCommit is the mean number of events per transaction over the
	// whole run, warm-up included.
	PerCommit float64 `json:"events_per_commit"`
	first     string
}

// rate is events per second in the measured window.
func (t throughput) rate() float64 {
	if t.Elapsed <= 0 {
		return 0
	}
	return float64(t.Events) / t.Elapsed.Seconds()
}

// closedLoop runs fn from n goroutines, each starting its next request when
// the last one answered, for warmup and then d. Only requests that complete
// inside the measured window count; requests in flight when it ends finish
// normally (under ctx) so that stopping causes no errors. onMeasure, when
// set, is called as the window opens.
func closedLoop(ctx context.Context, n int, warmup, d time.Duration, cpu *cpuSampler, fn op, onMeasure func()) throughput {
	var (
		seq       atomic.Int64
		measuring atomic.Bool
		stopped   atomic.Bool
		events    atomic.Int64
		requests  atomic.Int64
		errs      errorCount
		wg        sync.WaitGroup
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stopped.Load() && ctx.Err() == nil {
				got, err := fn(ctx, seq.Add(1)-1)
				if err != nil {
					if ctx.Err() == nil {
						errs.add(err)
					}
					continue
				}
				if measuring.Load() {
					events.Add(int64(got))
					requests.Add(1)
				}
			}
		}()
	}
	sleep(ctx, warmup)
	before := cpu.sample()
	start := time.Now()
	measuring.Store(true)
	if onMeasure != nil {
		onMeasure()
	}
	sleep(ctx, d)
	measuring.Store(false)
	elapsed := time.Since(start)
	after := cpu.sample()
	stopped.Store(true)
	wg.Wait()
	return throughput{Events: events.Load(), Requests: requests.Load(), Elapsed: elapsed,
		Errors: errs.n.Load(), first: errs.firstError(), CPU: before.usage(after)}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// newHTTPClient returns the one client every phase shares: keep-alives on,
// and enough idle connections per host that no client ever redials.
func newHTTPClient(conns int) *http.Client {
	return &http.Client{
		Timeout: time.Minute,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        0,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// apiClient sends the workload to a running API.
type apiClient struct {
	http *http.Client
	base string
	key  string
	w    *workload
}

// post sends body to path and returns the answer's body if the status is
// want.
func (c *apiClient) post(ctx context.Context, path string, body []byte, want int, keep bool) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want || keep {
		data, err := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			return nil, fmt.Errorf("POST %s: status %d, want %d: %.300s", path, resp.StatusCode, want, data)
		}
		return data, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return nil, err
}

// single sends event seq to POST /v1/events.
func (c *apiClient) single(ctx context.Context, seq int64) (int, error) {
	_, err := c.post(ctx, "/v1/events", c.w.event(seq).body, http.StatusAccepted, false)
	if err != nil {
		return 0, err
	}
	return 1, nil
}

// batch sends batch seq to POST /v1/events/batch and checks that every
// item was processed.
func (c *apiClient) batch(ctx context.Context, seq int64) (int, error) {
	body, _ := c.w.batch(seq)
	return c.sendBatch(ctx, body, c.w.batchSize)
}

// sendBatch posts a batch body of size items and checks the answer.
func (c *apiClient) sendBatch(ctx context.Context, body []byte, size int) (int, error) {
	data, err := c.post(ctx, "/v1/events/batch", body, http.StatusOK, true)
	if err != nil {
		return 0, err
	}
	var res struct {
		Processed int `json:"processed"`
		Failed    int `json:"failed"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		return 0, fmt.Errorf("batch answer: %w", err)
	}
	if res.Processed != size || res.Failed != 0 {
		return res.Processed, fmt.Errorf("batch: %d processed, %d failed of %d: %.300s", res.Processed, res.Failed, size, data)
	}
	return size, nil
}

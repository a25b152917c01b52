package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/temporaltest"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
)

// binaries are the programs the suite runs, from the environment that
// scripts/faults.sh (make test-faults) and scripts/test.sh (make test) set.
type binaries struct {
	signalbox string // SIGNALBOX_BIN
	temporal  string // SIGNALBOX_TEMPORAL_CLI
	pgBindir  string // SIGNALBOX_PG_BINDIR
}

// binariesFromEnv reads the binaries' paths; without them the test fails
// saying how to run it, except under -short, where it skips.
func binariesFromEnv(t *testing.T) binaries {
	t.Helper()
	b := binaries{
		signalbox: os.Getenv("SIGNALBOX_BIN"),
		temporal:  os.Getenv("SIGNALBOX_TEMPORAL_CLI"),
		pgBindir:  os.Getenv("SIGNALBOX_PG_BINDIR"),
	}
	var missing []string
	for name, path := range map[string]string{"SIGNALBOX_BIN": b.signalbox, "SIGNALBOX_TEMPORAL_CLI": b.temporal,
		"SIGNALBOX_PG_BINDIR": b.pgBindir} {
		if path == "" {
			missing = append(missing, name+" is not set")
		} else if _, err := os.Stat(path); err != nil {
			missing = append(missing, fmt.Sprintf("%s=%s: %v", name, path, err))
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("%s: %v", strings.Join(sortedStrings(missing), "; "), errMissing)
		if testing.Short() {
			t.Skip(msg)
		}
		t.Fatal(msg)
	}
	return b
}

// system is one Signalbox deployment made of separate processes: the
// suite's PostgreSQL cluster, a Temporal dev server on a SQLite file,
// `signalbox api` and `signalbox worker`.
type system struct {
	t        *testing.T
	dir      string
	bin      binaries
	pg       *cluster
	temporal *proc
	api      *proc
	worker   *proc
	apiURL   string
	tcAddr   string
	tc       client.Client
	env      []string
}

// freePort returns a loopback port nothing listens on now. The processes
// restart on the same ports, which nothing else claims in between on a
// machine where ports are picked at random.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

// startSystem brings everything up in order and registers its clean-up:
// every process stopped and reaped, the cluster stopped, the run directory
// deleted when the test passed (kept to read its logs otherwise, until the
// next run sweeps it).
func startSystem(t *testing.T, bin binaries) *system {
	t.Helper()
	for _, s := range sweepStaleRuns(bin.pgBindir) {
		t.Logf("swept an earlier run that was left behind: %s", s)
	}
	dir, err := os.MkdirTemp("", runDirPattern)
	require.NoError(t, err)
	// The postgres OS user must reach the cluster's home inside it.
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644))
	t.Logf("run directory (process logs): %s", dir)

	s := &system{t: t, dir: dir, bin: bin}
	t.Cleanup(s.shutdown)

	pg, err := newCluster(bin.pgBindir, filepath.Join(dir, "pg"), freePort(t))
	require.NoError(t, err)
	s.pg = pg
	require.NoError(t, pg.init(), "initdb (log %s)", pg.logFile())
	require.NoError(t, pg.start(), "start PostgreSQL:\n%s", tail(pg.logFile(), 30))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, pg.createDatabase(ctx))

	tport := freePort(t)
	s.tcAddr = fmt.Sprintf("127.0.0.1:%d", tport)
	s.temporal = newProc("temporal", bin.temporal, append([]string{"server", "start-dev",
		"--ip", "127.0.0.1", "--port", strconv.Itoa(tport),
		"--http-port", strconv.Itoa(freePort(t)), "--metrics-port", strconv.Itoa(freePort(t)),
		"--headless", "--namespace", "default", "--log-level", "warn",
		// A file, so a SIGKILL loses nothing that was acknowledged.
		"--db-filename", filepath.Join(dir, "temporal.db"),
		// The settings of temporaltest and scripts/temporal.sh.
	}, temporaltest.ServerArgs()...), baseEnv(), filepath.Join(dir, "temporal.log"))
	tc, err := client.NewLazyClient(client.Options{HostPort: s.tcAddr,
		Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	require.NoError(t, err)
	s.tc = tc
	require.NoError(t, s.temporal.start())
	require.NoError(t, s.temporalHealthy(2*time.Minute))

	apiAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s.apiURL = "http://" + apiAddr
	s.env = append(baseEnv(),
		"DATABASE_URL="+pg.url(),
		"TEMPORAL_ADDRESS="+s.tcAddr,
		"TEMPORAL_NAMESPACE=default",
		"HTTP_ADDR="+apiAddr,
		"WEBHOOK_ALLOW_PRIVATE=true",
		"OUTBOX_POLL=200ms",
		"LOG_FORMAT=text",
		"LOG_LEVEL=info",
	)
	out, err := runCmd(time.Minute, s.env, bin.signalbox, "migrate")
	require.NoError(t, err)
	t.Logf("signalbox migrate: %s", strings.TrimSpace(out))

	s.api = newProc("api", bin.signalbox, []string{"api"}, s.env, filepath.Join(dir, "api.log"))
	s.worker = newProc("worker", bin.signalbox, []string{"worker"}, s.env, filepath.Join(dir, "worker.log"))
	require.NoError(t, s.api.start())
	require.NoError(t, s.apiReady(time.Minute))
	require.NoError(t, s.worker.start())
	require.NoError(t, s.workerPolling(1, time.Minute))
	return s
}

// baseEnv is what every child process gets from the suite's environment:
// enough to run, and nothing of the developer's Signalbox settings (make
// test exports a DATABASE_URL of its own, which must never reach these).
func baseEnv() []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir(), "TMPDIR=" + os.TempDir(), "LANG=C"}
	if tz := os.Getenv("TZ"); tz != "" {
		env = append(env, "TZ="+tz)
	}
	return env
}

// workspace makes the workspace the load runs in with the CLI and returns
// its id and API key.
func (s *system) workspace() (id, key string) {
	s.t.Helper()
	out, err := runCmd(time.Minute, s.env, s.bin.signalbox, "workspace", "create", "--name", "faults", "--plan", "enterprise", "--json")
	require.NoError(s.t, err)
	var ws struct {
		ID  string `json:"workspace_id"`
		Key string `json:"api_key"`
	}
	require.NoError(s.t, json.Unmarshal([]byte(out), &ws), "workspace create printed %q", out)
	require.NotEmpty(s.t, ws.Key)
	return ws.ID, ws.Key
}

// temporalHealthy waits until the dev server's frontend answers.
func (s *system) temporalHealthy(timeout time.Duration) error {
	ok := pollUntil(timeout, 250*time.Millisecond, func() bool {
		if !s.temporal.running() {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := s.tc.CheckHealth(ctx, &client.CheckHealthRequest{})
		return err == nil
	})
	if !ok {
		return fmt.Errorf("the Temporal dev server was not healthy within %s:\n%s", timeout, tail(s.temporal.log, 30))
	}
	return nil
}

// apiReady waits until the API answers /readyz (it reaches PostgreSQL).
func (s *system) apiReady(timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	ok := pollUntil(timeout, 100*time.Millisecond, func() bool {
		if !s.api.running() {
			return false
		}
		resp, err := hc.Get(s.apiURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if !ok {
		return fmt.Errorf("the API was not ready within %s:\n%s", timeout, tail(s.api.log, 30))
	}
	return nil
}

// workerPolling waits until the worker's log says its n-th start polls.
func (s *system) workerPolling(n int, timeout time.Duration) error {
	ok := pollUntil(timeout, 100*time.Millisecond, func() bool {
		return s.worker.running() && s.worker.logCount("temporal worker polling") >= n
	})
	if !ok {
		return fmt.Errorf("the worker did not poll within %s:\n%s", timeout, tail(s.worker.log, 30))
	}
	return nil
}

// procs lists the child processes, in the order they stop.
func (s *system) procs() []*proc {
	var out []*proc
	for _, p := range []*proc{s.api, s.worker, s.temporal} {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// diedOnTheirOwn lists exits of child processes that the suite did not
// cause.
func (s *system) diedOnTheirOwn() []string {
	var out []string
	for _, p := range s.procs() {
		out = append(out, p.exitedOnItsOwn()...)
	}
	return out
}

// logs names every log file.
func (s *system) logs() map[string]string {
	logs := map[string]string{}
	for _, p := range s.procs() {
		logs[p.name] = p.log
	}
	if s.pg != nil {
		logs["postgres"] = s.pg.logFile()
	}
	return logs
}

// shutdown stops everything (API and worker first, while what they use
// still runs), even when the test failed half-way through its start.
func (s *system) shutdown() {
	t := s.t
	if t.Failed() {
		logTails(t, s.logs())
	}
	var wg sync.WaitGroup
	for _, p := range []*proc{s.api, s.worker} {
		if p == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.stop(20 * time.Second); err != nil {
				t.Errorf("stop %s: %v", p.name, err)
			}
		}()
	}
	wg.Wait()
	if s.tc != nil {
		s.tc.Close()
	}
	if s.temporal != nil {
		if err := s.temporal.stop(20 * time.Second); err != nil {
			t.Errorf("stop temporal: %v", err)
		}
	}
	if s.pg != nil {
		if err := s.pg.stop(); err != nil {
			t.Errorf("stop PostgreSQL: %v", err)
			return // keep the directory: the cluster may still use it
		}
	}
	if t.Failed() {
		t.Logf("kept %s for its logs (the next run deletes it)", s.dir)
		return
	}
	if err := os.RemoveAll(s.dir); err != nil {
		t.Errorf("remove %s: %v", s.dir, err)
	}
}

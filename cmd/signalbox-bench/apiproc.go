package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// pprofOverlay is compiled into package main of cmd/signalbox only when
// -pprof asks for it, through `go build -overlay`: the repository is not
// touched and the normal binary never serves pprof.
const pprofOverlay = `package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if addr := os.Getenv("SIGNALBOX_BENCH_PPROF_ADDR"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
}
`

// buildSignalbox compiles cmd/signalbox into dir, with pprof when asked.
func buildSignalbox(ctx context.Context, dir string, withPprof bool) (string, error) {
	bin := filepath.Join(dir, "signalbox")
	args := []string{"build", "-o", bin}
	if withPprof {
		out, err := exec.CommandContext(ctx, "go", "list", "-f", "{{.Dir}}", "github.com/signalbox/signalbox/cmd/signalbox").Output()
		if err != nil {
			return "", fmt.Errorf("locate cmd/signalbox: %w", err)
		}
		src := filepath.Join(dir, "zz_bench_pprof.go")
		if err := os.WriteFile(src, []byte(pprofOverlay), 0o600); err != nil {
			return "", err
		}
		overlay, _ := json.Marshal(map[string]map[string]string{
			"Replace": {filepath.Join(strings.TrimSpace(string(out)), "zz_bench_pprof.go"): src},
		})
		overlayFile := filepath.Join(dir, "overlay.json")
		if err := os.WriteFile(overlayFile, overlay, 0o600); err != nil {
			return "", err
		}
		args = append(args, "-overlay", overlayFile)
	}
	args = append(args, "github.com/signalbox/signalbox/cmd/signalbox")
	cmd := exec.CommandContext(ctx, "go", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/signalbox: %w\n%s", err, out)
	}
	return bin, nil
}

// apiProcess is `signalbox api` running as a child process.
type apiProcess struct {
	cmd       *exec.Cmd
	addr      string
	pprofAddr string
	exited    chan struct{}
	waitErr   error
	log       *tailBuffer
}

// passEnv are settings of the bench's own environment handed to the API, so
// that it can be tuned from the command line (DB_MAX_CONNS=32 make bench).
// DATABASE_URL, HTTP_ADDR and the log settings are the bench's own; OTEL_*
// stays out so tracing is off, as it is by default.
var passEnv = []string{"PATH", "HOME", "TMPDIR", "GOMAXPROCS", "GOGC", "GOMEMLIMIT", "GODEBUG",
	"DB_MAX_CONNS", "DB_STATEMENT_TIMEOUT", "DB_LOCK_TIMEOUT", "INGEST_COMMITTERS", "AUTH_CACHE_TTL", "TRIGGER_CACHE_TTL", "OUTBOX_POLL",
	"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "DECISION_RETENTION", "CATALOG_CACHE_TTL", "BENCH_SKIP_NAME_COUNTS"}

// startAPI runs `bin api` against databaseURL on a free loopback port.
func startAPI(bin, databaseURL string, getenv func(string) string, withPprof bool) (*apiProcess, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	env := []string{"DATABASE_URL=" + databaseURL, "HTTP_ADDR=" + addr, "LOG_LEVEL=warn", "LOG_FORMAT=text"}
	for _, k := range passEnv {
		if v := getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	p := &apiProcess{addr: addr, exited: make(chan struct{}), log: &tailBuffer{max: 16 << 10}}
	if withPprof {
		if p.pprofAddr, err = freeAddr(); err != nil {
			return nil, err
		}
		env = append(env, "SIGNALBOX_BENCH_PPROF_ADDR="+p.pprofAddr)
	}
	p.cmd = exec.Command(bin, "api")
	p.cmd.Env = env
	p.cmd.Stdout = p.log
	p.cmd.Stderr = p.log
	// Its own process group, so a Ctrl-C in the terminal reaches only the
	// bench, which then stops the API in order before dropping the database.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s api: %w", bin, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// freeAddr finds a free loopback port.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// pid is the API's process id.
func (p *apiProcess) pid() int { return p.cmd.Process.Pid }

// alive reports whether the process is still running.
func (p *apiProcess) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// waitReady polls /readyz until it answers 200.
func (p *apiProcess) waitReady(ctx context.Context, client *http.Client, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if !p.alive() {
			return fmt.Errorf("signalbox api exited (%v):\n%s", p.waitErr, p.log.String())
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/readyz", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("signalbox api not ready after %s:\n%s", timeout, p.log.String())
		}
		sleep(ctx, 50*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// peakRSS reads the process's high-water resident set (VmHWM) in bytes.
func (p *apiProcess) peakRSS() (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc/PID/status")
}

// cpuProfile fetches a CPU profile of secs seconds into file.
func (p *apiProcess) cpuProfile(ctx context.Context, secs int, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.pprofAddr, secs), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: status %d: %.200s", resp.StatusCode, buf.Bytes())
	}
	return os.WriteFile(file, buf.Bytes(), 0o644)
}

// stop asks the API to shut down and kills it if it has not within timeout.
func (p *apiProcess) stop(timeout time.Duration) {
	if p == nil || !p.alive() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// logTail is the end of what the API wrote.
func (p *apiProcess) logTail() string {
	if p == nil {
		return ""
	}
	return strings.TrimSpace(p.log.String())
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

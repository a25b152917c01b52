package faults

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is one long-running child process that the suite starts, kills and
// starts again with the same command line, appending its output to one log
// file.
type proc struct {
	name string
	path string
	args []string
	env  []string
	log  string

	mu sync.Mutex
	// cmd and done belong to the current run; done closes once it is reaped.
	cmd  *exec.Cmd
	done chan struct{}
	// expected marks an exit the suite caused (a kill or a stop).
	expected bool
	// unexpected lists exits nobody asked for, with their status.
	unexpected []string
	starts     int
}

// newProc describes a process; nothing runs until start.
func newProc(name, path string, args, env []string, log string) *proc {
	return &proc{name: name, path: path, args: args, env: env, log: log}
}

// spawn is a request to the spawner thread.
type spawn struct {
	cmd *exec.Cmd
	err chan error
}

var (
	spawnOnce sync.Once
	spawns    chan spawn
)

// startCmd starts cmd from one OS thread that lives as long as the test
// binary. Children get SIGKILL when the thread that forked them ends
// (Pdeathsig), so forking from a thread that never ends ties them to the
// process: a test binary killed by go test's -timeout takes them with it.
func startCmd(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawns = make(chan spawn)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread must not be reused or end
			for s := range spawns {
				s.err <- s.cmd.Start()
			}
		}()
	})
	s := spawn{cmd: cmd, err: make(chan error, 1)}
	spawns <- s
	return <-s.err
}

// start runs the process once more.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s is already running", p.name)
		}
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.starts++
	fmt.Fprintf(f, "\n--- faults: start #%d at %s: %s %s\n", p.starts, time.Now().Format(time.RFC3339Nano), p.path, strings.Join(p.args, " "))
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = p.env
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, so a Ctrl-C in the terminal reaches the test
	// alone; SIGKILL when the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := startCmd(cmd); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.expected = cmd, done, false
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(f, "--- faults: %s exited at %s: %v\n", p.name, time.Now().Format(time.RFC3339Nano), exitText(err))
		f.Close()
		p.mu.Lock()
		if !p.expected {
			p.unexpected = append(p.unexpected, fmt.Sprintf("%s (pid %d) exited on its own: %s", p.name, cmd.Process.Pid, exitText(err)))
		}
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// signal sends sig to the running process and returns the channel that
// closes once it is reaped; nil when it does not run.
func (p *proc) signal(sig syscall.Signal) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return nil
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	p.expected = true
	_ = p.cmd.Process.Signal(sig)
	return p.done
}

// kill SIGKILLs the process and waits until it is reaped.
func (p *proc) kill() error {
	done := p.signal(syscall.SIGKILL)
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s was not reaped 30s after SIGKILL", p.name)
	}
}

// stop asks the process to stop (SIGTERM), then kills it after grace.
func (p *proc) stop(grace time.Duration) error {
	done := p.signal(syscall.SIGTERM)
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-time.After(grace):
		return p.kill()
	}
}

// running says whether the process runs now.
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// startCount says how many times the process was started.
func (p *proc) startCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// exitedOnItsOwn lists the exits the suite did not cause.
func (p *proc) exitedOnItsOwn() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.unexpected...)
}

// logCount counts the lines of the log that contain s.
func (p *proc) logCount(s string) int {
	raw, err := os.ReadFile(p.log)
	if err != nil {
		return 0
	}
	return bytes.Count(raw, []byte(s))
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// pollUntil calls ok every interval until it is true or timeout passes.
func pollUntil(timeout, interval time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if ok() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}

// runCmd runs a short command to its end and returns its combined output.
func runCmd(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Dir = "/"
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
		}
		return out.String(), nil
	case <-time.After(timeout):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return out.String(), fmt.Errorf("%s %s: no answer in %s", name, strings.Join(args, " "), timeout)
	}
}

// errMissing says which of the suite's binaries the environment lacks.
var errMissing = errors.New("run the fault suite with `make test-faults` (or `make test`, which runs it at a smaller size): " +
	"they build bin/signalbox and bin/temporal, install PostgreSQL's server binaries and set " +
	"SIGNALBOX_BIN, SIGNALBOX_TEMPORAL_CLI and SIGNALBOX_PG_BINDIR")

// logTails prints the last lines of each log, for a failed run.
func logTails(t *testing.T, logs map[string]string) {
	t.Helper()
	for _, name := range sortedKeys(logs) {
		t.Logf("--- last lines of %s (%s):\n%s", name, logs[name], tail(logs[name], 40))
	}
}

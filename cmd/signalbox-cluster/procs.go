package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	tlog "go.temporal.io/sdk/log"
)

// quietLogger is the SDK's logger here: errors only.
func quietLogger() tlog.Logger {
	return tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// proc is one signalbox process (api or worker).
type proc struct {
	name   string
	cmd    *exec.Cmd
	url    string // where it serves /readyz (and, for an api, the API)
	exited chan error
	log    *os.File
}

// startProc runs `signalbox ROLE` with env on top of this process's
// environment, serving HTTP on port (HTTP_ADDR for an api, HEALTH_ADDR for
// a worker), and waits until its /readyz answers.
func startProc(ctx context.Context, bin, dir, name, role string, port int, env []string) (*proc, error) {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	lf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, role)
	cmd.Env = append(append(os.Environ(), env...), "HTTP_ADDR="+addr, "HEALTH_ADDR="+addr)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, url: "http://" + addr, exited: make(chan error, 1), log: lf}
	go func() { p.exited <- cmd.Wait() }()
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case err := <-p.exited:
			p.exited <- err
			return p, fmt.Errorf("%s exited at start: %v (log: %s)", name, err, lf.Name())
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			return p, fmt.Errorf("%s not ready after a minute (log: %s)", name, lf.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pid is the process id (a worker's Temporal identity starts with it).
func (p *proc) pid() int { return p.cmd.Process.Pid }

// kill sends SIGKILL: no graceful stop, as when a machine dies.
func (p *proc) kill() {
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	<-p.exited
	p.exited <- nil
}

// stop sends SIGTERM and waits (SIGKILL after 30 s).
func (p *proc) stop() {
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case err := <-p.exited:
		p.exited <- err
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.exited
		p.exited <- nil
	}
	_ = p.log.Close()
}

// alive says whether the process still runs.
func (p *proc) alive() bool {
	select {
	case err := <-p.exited:
		p.exited <- err
		return false
	default:
		return true
	}
}

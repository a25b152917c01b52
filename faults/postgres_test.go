package faults

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// cluster is the suite's own PostgreSQL cluster, run with Debian's initdb
// and pg_ctl (never the machine's own server): the suite restarts it with
// `pg_ctl restart -m immediate`, which no shared server could take. As root
// the server runs as the `postgres` OS user, as scripts/postgres.sh does.
type cluster struct {
	bindir string
	home   string
	port   int
	// uid and gid own the cluster; asUser runs commands as them (root only).
	asUser bool
	uid    int
	gid    int
}

// clusterDatabase is the database Signalbox uses inside the cluster.
const clusterDatabase = "signalbox"

func (c *cluster) data() string    { return filepath.Join(c.home, "data") }
func (c *cluster) logFile() string { return filepath.Join(c.home, "postgres.log") }

// url is the DATABASE_URL of the cluster's signalbox database.
func (c *cluster) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, clusterDatabase)
}

// newCluster prepares home for a cluster owned by the right OS user.
func newCluster(bindir, home string, port int) (*cluster, error) {
	c := &cluster{bindir: bindir, home: home, port: port}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres OS user (Debian's postgresql package makes it): %w", err)
		}
		c.asUser = true
		c.uid, _ = strconv.Atoi(u.Uid)
		c.gid, _ = strconv.Atoi(u.Gid)
	}
	if err := os.MkdirAll(filepath.Join(home, "run"), 0o700); err != nil {
		return nil, err
	}
	if c.asUser {
		for _, d := range []string{home, filepath.Join(home, "run")} {
			if err := os.Chown(d, c.uid, c.gid); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// pg runs one of the cluster's server programs as its owner.
func (c *cluster) pg(timeout time.Duration, prog string, args ...string) (string, error) {
	bin := filepath.Join(c.bindir, prog)
	env := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	if c.asUser {
		return runCmd(timeout, env, "runuser", append([]string{"-u", "postgres", "--", bin}, args...)...)
	}
	return runCmd(timeout, env, bin, args...)
}

// init makes the cluster: trust authentication on 127.0.0.1 only, durable
// settings (fsync and synchronous_commit on, as the product requires).
func (c *cluster) init() error {
	if _, err := c.pg(2*time.Minute, "initdb", "-D", c.data(), "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C"); err != nil {
		return err
	}
	conf := fmt.Sprintf(`
# Signalbox fault suite (faults/): restarted with pg_ctl restart -m immediate.
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
max_connections = 100
shared_buffers = 64MB
fsync = on
synchronous_commit = on
full_page_writes = on
log_min_messages = warning
`, c.port, filepath.Join(c.home, "run"))
	f, err := os.OpenFile(filepath.Join(c.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(conf); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	lf, err := os.OpenFile(c.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	lf.Close()
	if c.asUser {
		return os.Chown(c.logFile(), c.uid, c.gid)
	}
	return nil
}

// start starts the server and waits until it accepts connections.
func (c *cluster) start() error {
	_, err := c.pg(3*time.Minute, "pg_ctl", "-D", c.data(), "-l", c.logFile(), "-w", "-t", "150", "start")
	return err
}

// restartImmediate is the fault: every server process quits without a
// checkpoint (as in a crash), the new server replays the WAL.
func (c *cluster) restartImmediate() error {
	_, err := c.pg(3*time.Minute, "pg_ctl", "-D", c.data(), "-l", c.logFile(), "-m", "immediate", "-w", "-t", "150", "restart")
	return err
}

// stop stops the server if it runs: fast, then immediate.
func (c *cluster) stop() error {
	if _, err := os.Stat(filepath.Join(c.data(), "postmaster.pid")); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	_, err := c.pg(90*time.Second, "pg_ctl", "-D", c.data(), "-m", "fast", "-w", "-t", "60", "stop")
	if err == nil {
		return nil
	}
	_, err2 := c.pg(60*time.Second, "pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "-t", "30", "stop")
	if err2 == nil {
		return nil
	}
	return errors.Join(err, err2)
}

// createDatabase makes the database Signalbox runs on.
func (c *cluster) createDatabase(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+clusterDatabase)
	return err
}

// runDirPattern names the suite's run directories in the temporary
// directory; ownerFile in each holds the pid of the test binary that made it.
const (
	runDirPattern = "signalbox-faults-*"
	ownerFile     = "owner.pid"
)

// sweepStaleRuns stops the cluster of every earlier run whose test binary
// is gone (killed by a go test -timeout, say, before its clean-up ran) and
// deletes its directory. Runs of a live binary (another checkout's suite)
// are left alone.
func sweepStaleRuns(bindir string) []string {
	var swept []string
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), runDirPattern))
	for _, dir := range dirs {
		raw, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // not ours, or still being made
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) == nil {
			continue
		}
		c := &cluster{bindir: bindir, home: filepath.Join(dir, "pg")}
		if os.Geteuid() == 0 {
			c.asUser = true
		}
		if err := c.stop(); err != nil {
			swept = append(swept, fmt.Sprintf("%s: could not stop its cluster: %v", dir, err))
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			swept = append(swept, fmt.Sprintf("%s: %v", dir, err))
			continue
		}
		swept = append(swept, dir)
	}
	return swept
}

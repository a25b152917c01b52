package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/signalbox/signalbox/store"
)

// SearchAttributes are the Keyword search attributes the enrollment
// workflows set, which a real cluster must have registered.
var SearchAttributes = []string{"SignalboxWorkspace", "SignalboxAutomation", "SignalboxContact"}

// clusterConfig says where the binaries are and how to start the cluster.
type clusterConfig struct {
	serverBin, sqlTool, schemaDir string
	databaseURL                   string
	shards                        int
	namespace                     string
	dir                           string
	log                           io.Writer
}

// cluster is a real Temporal server (every service in one process) on
// PostgreSQL persistence, in throwaway databases of its own.
type cluster struct {
	cfg                  clusterConfig
	address              string
	dbMain, dbVisibility string
	cmd                  *exec.Cmd
	exited               chan error
	logFile              *os.File
}

// startCluster creates the temporal and temporal_visibility schemas with
// the SQL tool (from the versioned schema directories of the server's
// module), writes a config file with cfg.shards history shards and free
// ports, starts the server, and creates the namespace and the search
// attributes. On error it stops what it started.
func startCluster(ctx context.Context, cfg clusterConfig) (c *cluster, err error) {
	pc, err := pgx.ParseConfig(cfg.databaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	suffix := strconv.Itoa(os.Getpid())
	c = &cluster{cfg: cfg, dbMain: "sbcluster_temporal_" + suffix, dbVisibility: "sbcluster_temporal_visibility_" + suffix,
		exited: make(chan error, 1)}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	for _, db := range []struct{ name, schema string }{{c.dbMain, "temporal"}, {c.dbVisibility, "visibility"}} {
		base := []string{"--plugin", "postgres12", "--ep", pc.Host, "-p", strconv.Itoa(int(pc.Port)), "-u", pc.User,
			"--pw", pc.Password, "--db", db.name}
		for _, step := range [][]string{
			{"create"},
			{"setup-schema", "-v", "0.0"},
			{"update-schema", "-d", filepath.Join(cfg.schemaDir, db.schema, "versioned")},
		} {
			cmd := exec.CommandContext(ctx, cfg.sqlTool, append(append([]string{}, base...), step...)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				return c, fmt.Errorf("temporal-sql-tool %s on %s: %w\n%s", step[0], db.name, err, out)
			}
		}
	}

	// The server stores membership ports as smallint: below 32768.
	ports, err := freeLowPorts(8)
	if err != nil {
		return c, err
	}
	c.address = fmt.Sprintf("127.0.0.1:%d", ports[0])
	dyn := filepath.Join(cfg.dir, "dynamicconfig.yaml")
	if err := os.WriteFile(dyn, []byte(dynamicConfig), 0o644); err != nil {
		return c, err
	}
	conf := filepath.Join(cfg.dir, "temporal.yaml")
	body := fmt.Sprintf(serverConfig, cfg.shards,
		pc.Host, pc.Port, pc.User, pc.Password, c.dbMain,
		pc.Host, pc.Port, pc.User, pc.Password, c.dbVisibility,
		ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], ports[6], ports[7], c.address, dyn)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return c, err
	}
	if c.logFile, err = os.Create(filepath.Join(cfg.dir, "temporal-server.log")); err != nil {
		return c, err
	}
	c.cmd = exec.Command(cfg.serverBin, "--config-file", conf, "--allow-no-auth", "start")
	c.cmd.Stdout, c.cmd.Stderr = c.logFile, c.logFile
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		return c, fmt.Errorf("start temporal-server: %w", err)
	}
	go func() { c.exited <- c.cmd.Wait() }()
	fmt.Fprintf(cfg.log, "temporal-server (pid %d) on %s, %d history shards, PostgreSQL databases %s and %s; log %s\n",
		c.cmd.Process.Pid, c.address, cfg.shards, c.dbMain, c.dbVisibility, c.logFile.Name())

	if err := c.waitHealthy(ctx, 3*time.Minute); err != nil {
		return c, err
	}
	if err := c.setUpNamespace(ctx); err != nil {
		return c, err
	}
	return c, nil
}

// waitHealthy waits for the frontend to answer.
func (c *cluster) waitHealthy(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case err := <-c.exited:
			c.exited <- err
			return fmt.Errorf("temporal-server exited: %v (log: %s)", err, c.logFile.Name())
		default:
		}
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		tc, err := client.DialContext(cctx, client.Options{HostPort: c.address, Namespace: "temporal-system", Logger: quietLogger()})
		if err == nil {
			_, err = tc.CheckHealth(cctx, &client.CheckHealthRequest{})
			tc.Close()
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("temporal-server not healthy after %s: %v (log: %s)", timeout, err, c.logFile.Name())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// setUpNamespace registers the namespace (the real server creates none)
// and the search attributes, and waits until a workflow can be listed by
// them.
func (c *cluster) setUpNamespace(ctx context.Context) error {
	tc, err := client.DialContext(ctx, client.Options{HostPort: c.address, Namespace: c.cfg.namespace, Logger: quietLogger()})
	if err != nil {
		return err
	}
	defer tc.Close()
	_, err = tc.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace: c.cfg.namespace, WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour)})
	var exists *serviceerror.NamespaceAlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("register namespace %s: %w", c.cfg.namespace, err)
	}
	attrs := map[string]enumspb.IndexedValueType{}
	for _, a := range SearchAttributes {
		attrs[a] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
	}
	// The namespace reaches every service's cache within seconds.
	deadline := time.Now().Add(time.Minute)
	for {
		_, err = tc.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
			Namespace: c.cfg.namespace, SearchAttributes: attrs})
		var already *serviceerror.AlreadyExists
		if err == nil || errors.As(err, &already) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("add search attributes: %w", err)
		}
		time.Sleep(time.Second)
	}
	for {
		_, err = tc.WorkflowService().ListWorkflowExecutions(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: c.cfg.namespace, Query: "SignalboxWorkspace = 'none'"})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("list by search attribute: %w", err)
		}
		time.Sleep(time.Second)
	}
}

// stop stops the server (SIGTERM, then SIGKILL after 20 s) and drops its
// databases.
func (c *cluster) stop() {
	if c.cmd != nil && c.cmd.Process != nil {
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			<-c.exited
		}
		c.cmd = nil
	}
	if c.logFile != nil {
		_ = c.logFile.Close()
	}
	for _, db := range []string{c.dbMain, c.dbVisibility} {
		if err := store.DropDatabase(c.cfg.databaseURL, db); err != nil && !strings.Contains(err.Error(), "does not exist") {
			fmt.Fprintf(c.cfg.log, "drop database %s: %v\n", db, err)
		}
	}
}

// freeLowPorts returns n consecutive loopback ports below 32768 that
// nothing listens on (the kernel's ephemeral range starts above).
func freeLowPorts(n int) ([]int, error) {
	for range 200 {
		base := 20000 + rand.IntN(12000-n)
		var ls []net.Listener
		ok := true
		for p := base; p < base+n; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			_ = l.Close()
		}
		if ok {
			ports := make([]int, n)
			for i := range ports {
				ports[i] = base + i
			}
			return ports, nil
		}
	}
	return nil, errors.New("no free ports below 32768")
}

// freePorts returns n loopback ports nothing listens on.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// serverConfig is the server's config file: PostgreSQL persistence for the
// default and visibility stores, every service on loopback.
const serverConfig = `log:
  stdout: true
  level: warn
persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: %d
  datastores:
    postgres-default:
      sql:
        pluginName: postgres12
        connectAddr: "%s:%d"
        connectProtocol: tcp
        user: %q
        password: %q
        databaseName: %q
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: 1h
    postgres-visibility:
      sql:
        pluginName: postgres12
        connectAddr: "%s:%d"
        connectProtocol: tcp
        user: %q
        password: %q
        databaseName: %q
        maxConns: 10
        maxIdleConns: 10
        maxConnLifetime: 1h
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1
services:
  frontend:
    rpc:
      grpcPort: %d
      membershipPort: %d
      bindOnLocalHost: true
  history:
    rpc:
      grpcPort: %d
      membershipPort: %d
      bindOnLocalHost: true
  matching:
    rpc:
      grpcPort: %d
      membershipPort: %d
      bindOnLocalHost: true
  worker:
    rpc:
      grpcPort: %d
      membershipPort: %d
      bindOnLocalHost: true
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: %q
dcRedirectionPolicy:
  policy: noop
dynamicConfigClient:
  filepath: %q
  pollInterval: 10s
`

// dynamicConfig: long workflow ids (Signalbox's carry uuids), the transfer
// processor's poll rate raised as on the dev server, and search attributes
// usable as soon as they are added (a test, not a production setting).
const dynamicConfig = `limit.maxIDLength:
  - value: 255
history.transferProcessorMaxPollRPS:
  - value: 1000
system.forceSearchAttributesCacheRefreshOnRead:
  - value: true
`

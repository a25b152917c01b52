package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/signalbox/signalbox/store"
)

// The scenario's automation: a first step, a durable delay (during which a
// worker is killed), then a wait for "activated" with a yes and a no
// branch; "unsubscribed" exits.
const clusterAutomation = `{
  "name": "cluster onboarding",
  "trigger": {"event": "signup", "frequency": "once"},
  "exit_on": ["unsubscribed"],
  "steps": [
    {"id": "hello", "type": "update_contact", "properties": {"welcomed": "true"}},
    {"id": "pause", "type": "delay", "duration": "30s"},
    {"id": "activation", "type": "wait_for_event", "event": "activated", "timeout": "60s",
     "yes": [{"id": "activated", "type": "update_contact", "properties": {"active": "true"}}],
     "no":  [{"id": "nudged", "type": "update_contact", "properties": {"active": "false"}}]}
  ]
}`

// contacts is how many enrollments the scenario runs: a third is
// activated, a third times out, a third unsubscribes.
const contacts = 60

const namespace = "signalbox"

type enrollment struct {
	ID          string  `json:"id"`
	ContactID   string  `json:"contact_id"`
	WorkflowID  string  `json:"workflow_id"`
	Status      string  `json:"status"`
	CurrentStep *string `json:"current_step"`
	Steps       []struct {
		StepID  string `json:"step_id"`
		Outcome string `json:"outcome"`
	} `json:"steps"`
}

// runTest is `signalbox-cluster test`.
func runTest(ctx context.Context, e env, out io.Writer) (err error) {
	start := time.Now()
	dir, err := os.MkdirTemp("", "signalbox-cluster-")
	if err != nil {
		return err
	}
	keep := false
	defer func() {
		if err != nil || keep {
			fmt.Fprintf(out, "logs kept in %s\n", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()

	var c *cluster
	if e.existing != "" {
		// A server of the caller's (namespace and search attributes set
		// up), to try the scenario without building the real server.
		fmt.Fprintf(out, "== using the Temporal server at %s\n", e.existing)
		c = &cluster{cfg: clusterConfig{namespace: namespace}, address: e.existing}
	} else {
		fmt.Fprintln(out, "== starting a Temporal cluster on PostgreSQL")
		if c, err = startCluster(ctx, clusterConfig{serverBin: e.serverBin, sqlTool: e.sqlTool, schemaDir: e.schemaDir,
			databaseURL: e.databaseURL, shards: e.shards, namespace: namespace, dir: dir, log: out}); err != nil {
			return err
		}
		defer c.stop()
	}

	dbName, dbURL, err := store.CreateScratchDatabase(ctx, e.databaseURL, "signalbox_cluster_")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			fmt.Fprintf(out, "database %s kept for a look\n", dbName)
			return
		}
		_ = store.DropDatabase(e.databaseURL, dbName)
	}()

	t, err := startTopology(ctx, e, c, dir, dbURL, 2, 3, out)
	if err != nil {
		return err
	}
	defer t.stop()
	fmt.Fprintf(out, "== ready in %s; driving %d enrollments through both APIs\n", time.Since(start).Round(time.Second), contacts)
	if err := t.scenario(ctx, out); err != nil {
		return err
	}
	fmt.Fprintf(out, "PASS: signalbox-cluster test in %s\n", time.Since(start).Round(time.Second))
	return nil
}

// topology is Signalbox's processes on a cluster.
type topology struct {
	e        env
	c        *cluster
	apis     []*proc
	workers  []*proc
	clients  []apiClient
	ws       string
	tc       client.Client
	stopOnce bool
}

// startTopology migrates the database, makes a workspace and starts the
// API and worker processes.
func startTopology(ctx context.Context, e env, c *cluster, dir, dbURL string, apis, workers int, out io.Writer) (t *topology, err error) {
	t = &topology{e: e, c: c}
	defer func() {
		if err != nil {
			t.stop()
		}
	}()
	base := []string{"DATABASE_URL=" + dbURL, "TEMPORAL_ADDRESS=" + c.address, "TEMPORAL_NAMESPACE=" + namespace,
		"LOG_LEVEL=warn", "OUTBOX_BACKLOG_EVERY=1s",
		// Fewer activities at once than half the connection pool (16): at
		// the default 100, update_contact activities were seen to wait a
		// whole StartToCloseTimeout (1 min) for a connection under a burst.
		"WORKER_CONCURRENCY=8"}
	migrate := exec.CommandContext(ctx, e.signalboxBin, "migrate")
	migrate.Env = append(os.Environ(), base...)
	if b, err := migrate.CombinedOutput(); err != nil {
		return t, fmt.Errorf("signalbox migrate: %w\n%s", err, b)
	} else if !strings.Contains(string(b), "schema") {
		return t, fmt.Errorf("signalbox migrate said: %s", b)
	}
	cmd := exec.CommandContext(ctx, e.signalboxBin, "workspace", "create", "--name", "cluster", "--plan", "enterprise", "--json")
	cmd.Env = append(os.Environ(), base...)
	raw, err := cmd.Output()
	if err != nil {
		return t, fmt.Errorf("signalbox workspace create: %w", err)
	}
	var ws struct {
		WorkspaceID string `json:"workspace_id"`
		APIKey      string `json:"api_key"`
	}
	if err := json.Unmarshal(raw, &ws); err != nil {
		return t, fmt.Errorf("workspace create: %w: %s", err, raw)
	}
	t.ws = ws.WorkspaceID
	ports, err := freePorts(apis + workers)
	if err != nil {
		return t, err
	}
	hc := newHTTPClient()
	for i := range apis {
		p, err := startProc(ctx, e.signalboxBin, dir, fmt.Sprintf("api-%d", i+1), "api", ports[i], base)
		if p != nil {
			t.apis = append(t.apis, p)
		}
		if err != nil {
			return t, err
		}
		t.clients = append(t.clients, apiClient{url: p.url, key: ws.APIKey, http: hc})
	}
	for i := range workers {
		p, err := startProc(ctx, e.signalboxBin, dir, fmt.Sprintf("worker-%d", i+1), "worker", ports[apis+i], base)
		if p != nil {
			t.workers = append(t.workers, p)
		}
		if err != nil {
			return t, err
		}
	}
	for _, p := range append(slices.Clone(t.apis), t.workers...) {
		fmt.Fprintf(out, "   %s pid %d on %s\n", p.name, p.pid(), p.url)
	}
	if t.tc, err = client.DialContext(ctx, client.Options{HostPort: c.address, Namespace: namespace, Logger: quietLogger()}); err != nil {
		return t, err
	}
	return t, nil
}

// stop stops every process it started.
func (t *topology) stop() {
	if t.stopOnce {
		return
	}
	t.stopOnce = true
	if t.tc != nil {
		t.tc.Close()
	}
	for _, p := range append(slices.Clone(t.apis), t.workers...) {
		if p.alive() {
			p.stop()
		}
	}
}

// scenario drives the enrollments and checks how they end.
func (t *topology) scenario(ctx context.Context, out io.Writer) error {
	var auto struct {
		ID string `json:"id"`
	}
	if err := t.clients[0].call(ctx, "POST", "/v1/automations", clusterAutomation, http.StatusCreated, &auto); err != nil {
		return err
	}
	if err := t.clients[1].call(ctx, "POST", "/v1/automations/"+auto.ID+"/enable", nil, http.StatusOK, nil); err != nil {
		return err
	}
	// The other API replica learns of the automation within
	// TRIGGER_CACHE_TTL (5 s).
	time.Sleep(6 * time.Second)

	email := func(i int) string { return fmt.Sprintf("c%03d@cluster.test", i) }
	for i := range contacts {
		var r struct {
			ContactID string `json:"contact_id"`
			Triggered int    `json:"workflows_triggered"`
		}
		if err := t.clients[i%2].call(ctx, "POST", "/v1/events",
			map[string]any{"name": "signup", "email": email(i), "create_if_missing": true}, http.StatusAccepted, &r); err != nil {
			return err
		}
		if r.Triggered != 1 {
			return fmt.Errorf("signup %d through api-%d triggered %d workflows, want 1", i, i%2+1, r.Triggered)
		}
	}

	// Every enrollment is past its first step and in its delay: kill a
	// worker, as a machine dies.
	if err := t.waitEnrollments(ctx, 2*time.Minute, func(es []enrollment) error {
		steps := map[string]int{}
		for _, e := range es {
			steps[deref(e.CurrentStep)+"/"+e.Status]++
		}
		// Most of them will do: on a loaded machine a few may still be
		// starting; they are taken over all the same.
		if steps["pause/active"] < 2*len(es)/3 {
			return fmt.Errorf("not two thirds of the enrollments are in their delay yet: %v", steps)
		}
		return nil
	}); err != nil {
		return err
	}
	victim := t.workers[0]
	killedAt := time.Now()
	victim.kill()
	fmt.Fprintf(out, "== SIGKILL %s (pid %d) with the enrollments in their delay\n", victim.name, victim.pid())

	// A third unsubscribes now; a third is activated once its wait has
	// opened (an event before the wait's window does not count).
	byEmail := map[string]string{}
	for i := range contacts {
		if i%3 == 2 {
			var r struct {
				ContactID string `json:"contact_id"`
				Exited    int    `json:"executions_exited"`
			}
			if err := t.clients[(i+1)%2].call(ctx, "POST", "/v1/events",
				map[string]any{"name": "unsubscribed", "email": email(i)}, http.StatusAccepted, &r); err != nil {
				return err
			}
			if r.Exited != 1 {
				return fmt.Errorf("unsubscribed %d exited %d enrollments, want 1", i, r.Exited)
			}
			byEmail[r.ContactID] = "exit"
		}
	}
	activated := map[int]bool{}
	deadline := time.Now().Add(4 * time.Minute)
	for len(activated) < contacts/3 {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d waits opened", len(activated), contacts/3)
		}
		es, err := t.enrollments(ctx)
		if err != nil {
			return err
		}
		waiting := map[string]bool{}
		for _, e := range es {
			if e.CurrentStep != nil && *e.CurrentStep == "activation" {
				waiting[e.ContactID] = true
			}
		}
		for i := 0; i < contacts; i += 3 {
			if activated[i] {
				continue
			}
			var c struct {
				Data []struct {
					ID string `json:"id"`
				} `json:"data"`
			}
			if err := t.clients[0].call(ctx, "GET", "/v1/contacts?email="+email(i), nil, http.StatusOK, &c); err != nil {
				return err
			}
			if len(c.Data) != 1 || !waiting[c.Data[0].ID] {
				continue
			}
			var r struct {
				Resumed int `json:"executions_resumed"`
			}
			if err := t.clients[(i+1)%2].call(ctx, "POST", "/v1/events",
				map[string]any{"name": "activated", "email": email(i)}, http.StatusAccepted, &r); err != nil {
				return err
			}
			// 0 when the wait's index row is not written yet: its look-back
			// then finds the event (the outcome is checked below).
			if r.Resumed > 1 {
				return fmt.Errorf("activated %d resumed %d waits, want at most 1", i, r.Resumed)
			}
			activated[i] = true
			byEmail[c.Data[0].ID] = "yes"
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Every enrollment ends as it should.
	var final []enrollment
	if err := t.waitEnrollments(ctx, 5*time.Minute, func(es []enrollment) error {
		for _, e := range es {
			if e.Status == "active" {
				return fmt.Errorf("enrollment %s still active on %v", e.ID, deref(e.CurrentStep))
			}
		}
		final = es
		return nil
	}); err != nil {
		return err
	}
	counts := map[string]int{}
	for _, e := range final {
		var detail enrollment
		if err := t.clients[1].call(ctx, "GET", "/v1/enrollments/"+e.ID, nil, http.StatusOK, &detail); err != nil {
			return err
		}
		steps := map[string]string{}
		for _, s := range detail.Steps {
			steps[s.StepID] = s.Outcome
		}
		want := byEmail[e.ContactID]
		if want == "" {
			want = "no"
		}
		switch want {
		case "exit":
			if e.Status != "exited" {
				return fmt.Errorf("enrollment %s of an unsubscribed contact ended %s, want exited", e.ID, e.Status)
			}
		case "yes", "no":
			step := map[string]string{"yes": "activated", "no": "nudged"}[want]
			if e.Status != "completed" || steps[step] == "" || steps["hello"] == "" {
				return fmt.Errorf("enrollment %s (%s) ended %s with steps %v, want completed through %s", e.ID, want, e.Status, steps, step)
			}
		}
		counts[want]++
	}
	if counts["yes"] != contacts/3 || counts["no"] != contacts/3 || counts["exit"] != contacts/3 {
		return fmt.Errorf("enrollments ended %v, want %d of each", counts, contacts/3)
	}
	fmt.Fprintf(out, "   every enrollment ended as it should: %d activated, %d timed out, %d exited\n",
		counts["yes"], counts["no"], counts["exit"])

	if err := t.checkTakeover(ctx, final, victim, killedAt, out); err != nil {
		return err
	}
	if err := t.checkVisibility(ctx, auto.ID, final, out); err != nil {
		return err
	}
	// Nothing is left to deliver, and the processes report it.
	var st struct {
		Outbox struct {
			Pending int `json:"pending"`
		} `json:"outbox"`
	}
	if err := t.clients[0].call(ctx, "GET", "/v1/status", nil, http.StatusOK, &st); err != nil {
		return err
	}
	if st.Outbox.Pending != 0 {
		return fmt.Errorf("GET /v1/status: %d intents still pending", st.Outbox.Pending)
	}
	for _, p := range append(slices.Clone(t.apis), t.workers[1:]...) {
		if !p.alive() {
			return fmt.Errorf("%s died (log: %s)", p.name, p.log.Name())
		}
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

// enrollments lists the workspace's enrollments.
func (t *topology) enrollments(ctx context.Context) ([]enrollment, error) {
	var page struct {
		Data []enrollment `json:"data"`
	}
	if err := t.clients[0].call(ctx, "GET", "/v1/enrollments?limit=1000", nil, http.StatusOK, &page); err != nil {
		return nil, err
	}
	return page.Data, nil
}

// waitEnrollments polls until all enrollments exist and check accepts them.
func (t *topology) waitEnrollments(ctx context.Context, timeout time.Duration, check func([]enrollment) error) error {
	deadline := time.Now().Add(timeout)
	for {
		es, err := t.enrollments(ctx)
		if err != nil {
			return err
		}
		if len(es) != contacts {
			err = fmt.Errorf("%d enrollments, want %d", len(es), contacts)
		} else {
			err = check(es)
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// checkTakeover reads every enrollment's history: the killed worker had
// taken tasks before it died and none after, and the survivors ran what
// came after.
func (t *topology) checkTakeover(ctx context.Context, es []enrollment, victim *proc, killedAt time.Time, out io.Writer) error {
	victimID := strconv.Itoa(victim.pid()) + "@"
	survivors := map[string]bool{}
	for _, w := range t.workers[1:] {
		survivors[strconv.Itoa(w.pid())+"@"] = true
	}
	var victimBefore, tookOver int
	after := map[string]int{}
	for _, e := range es {
		it := t.tc.GetWorkflowHistory(ctx, e.WorkflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		sawVictim, survivorAfter := false, false
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				return fmt.Errorf("history of %s: %w", e.WorkflowID, err)
			}
			var identity string
			if a := ev.GetWorkflowTaskStartedEventAttributes(); a != nil {
				identity = a.GetIdentity()
			} else if a := ev.GetActivityTaskStartedEventAttributes(); a != nil {
				identity = a.GetIdentity()
			} else {
				continue
			}
			id, _, _ := strings.Cut(identity, "@")
			id += "@"
			at := ev.GetEventTime().AsTime()
			switch {
			case id == victimID && at.Before(killedAt):
				sawVictim = true
			case id == victimID:
				return fmt.Errorf("%s: the killed worker started a task at %s, after it was killed at %s", e.WorkflowID, at, killedAt)
			case survivors[id] && at.After(killedAt):
				survivorAfter = true
				after[id]++
			}
		}
		if sawVictim {
			victimBefore++
			if survivorAfter {
				tookOver++
			}
		}
	}
	if victimBefore == 0 {
		return errors.New("the killed worker had started no task: the kill proved nothing")
	}
	if tookOver != victimBefore {
		return fmt.Errorf("of %d enrollments the killed worker had worked on, survivors finished %d", victimBefore, tookOver)
	}
	if len(after) == 0 {
		return errors.New("no surviving worker started a task after the kill")
	}
	fmt.Fprintf(out, "   the killed worker had run tasks of %d enrollments; the survivors finished all of them (tasks after the kill by worker: %v)\n",
		victimBefore, after)
	return nil
}

// checkVisibility finds the enrollments with `temporal workflow list` by
// each search attribute.
func (t *topology) checkVisibility(ctx context.Context, automationID string, es []enrollment, out io.Writer) error {
	list := func(query string) (int, error) {
		cmd := exec.CommandContext(ctx, t.e.cli, "workflow", "list", "--address", t.c.address, "--namespace", namespace,
			"--query", query, "--output", "jsonl")
		raw, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return 0, fmt.Errorf("temporal workflow list --query %q: %w: %s", query, err, ee.Stderr)
			}
			return 0, err
		}
		n := 0
		for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			var wf struct {
				Execution struct {
					WorkflowID string `json:"workflowId"`
				} `json:"execution"`
			}
			if err := json.Unmarshal([]byte(line), &wf); err != nil {
				return 0, fmt.Errorf("temporal workflow list output: %w: %s", err, line)
			}
			if !strings.HasPrefix(wf.Execution.WorkflowID, "enrollment-") {
				return 0, fmt.Errorf("temporal workflow list found %q", wf.Execution.WorkflowID)
			}
			n++
		}
		return n, nil
	}
	queries := []struct {
		q    string
		want int
	}{
		{fmt.Sprintf("SignalboxWorkspace = '%s'", t.ws), contacts},
		{fmt.Sprintf("SignalboxAutomation = '%s' AND ExecutionStatus = 'Completed'", automationID), 2 * contacts / 3},
		{fmt.Sprintf("SignalboxContact = '%s'", es[0].ContactID), 1},
	}
	for _, q := range queries {
		deadline := time.Now().Add(time.Minute)
		for {
			n, err := list(q.q)
			if err != nil {
				return err
			}
			if n == q.want {
				fmt.Fprintf(out, "   temporal workflow list --query %q: %d enrollments\n", q.q, n)
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("temporal workflow list --query %q found %d, want %d", q.q, n, q.want)
			}
			time.Sleep(time.Second)
		}
	}
	return nil
}

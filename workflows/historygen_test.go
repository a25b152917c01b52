package workflows_test

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/signalbox/signalbox/activities"
	"github.com/signalbox/signalbox/event"
	"github.com/signalbox/signalbox/workflows"
)

// updateHistories turns TestGenerateHistories on; see
// testdata/histories/README.md.
var updateHistories = flag.Bool("update-histories", false,
	"run the history scenarios on a Temporal dev server and write the histories that are missing to "+historyDir)

// historyGeneration prefixes the names of the histories written now. Bump
// it with a change that goes behind workflow.GetVersion, so that the new
// histories are added beside the old ones, which must keep replaying.
const historyGeneration = "v4"

// historyIdentity is the client and worker identity in saved histories, in
// place of a process id and host name.
const historyIdentity = "signalbox-historygen"

// historyScenario is one enrollment whose history is saved.
type historyScenario struct {
	name  string
	steps string
	// lookback and claimed map a wait_for_event step to the id of the event
	// the fake RegisterWait (found by look-back) or ClearWait (claimed as
	// the timer fired) returns.
	lookback, claimed map[string]string
	// closed lists wait steps whose window RegisterWait finds closed with
	// nothing in it; behind maps a wait step to how far PostgreSQL's clock
	// is behind when its timer first fires (ClearWait answers Remaining).
	closed map[string]bool
	behind map[string]time.Duration
	// matched maps a wait step on several events to the events ("id:name")
	// it has matched: the fake RegisterWait returns them, and ClearWait
	// too; complete says they complete it (RegisterWait resumes it).
	matched  map[string][]string
	complete bool
	// receivedAgo backdates the trigger's receipt: the enrollment starts
	// that late.
	receivedAgo time.Duration
	// drive acts on the running enrollment: signals, cancellation.
	drive func(ctx context.Context, t *testing.T, c client.Client, workflowID string)
	// want is the status the enrollment ends with, and outcomes its step
	// log as "step_id outcome" lines.
	want     string
	outcomes []string
}

// historyScenarios cover every step type, both ways out of a branch and of
// a wait (signal, look-back, timeout, claimed at the timeout), ignored and
// stale signals, an exit during a delay and during a wait, and a permanent
// failure. Durations are short: they run in real time.
var historyScenarios = []historyScenario{
	{
		name: "every_step",
		steps: `[
			{"id": "notify_crm", "type": "webhook", "url": "https://crm.example/hooks",
			 "headers": {"X-Source": "signalbox"}, "body": {"email": "contact.email", "plan": "trigger.properties.plan"}},
			{"id": "welcome", "type": "send_email", "to": "contact.email",
			 "subject": "'Welcome, ' + contact.first_name", "text": "'Hello!'"},
			{"id": "tag", "type": "update_contact", "properties": {"stage": "'onboarding'"},
			 "first_name": "contact.first_name.trim()"},
			{"id": "is_pro", "type": "branch", "condition": "true",
			 "yes": [{"id": "pause", "type": "delay", "duration": "1s"}],
			 "no": [{"id": "never_pro", "type": "emit_event", "name": "onboarding.never"}]},
			{"id": "is_free", "type": "branch", "condition": "false",
			 "yes": [{"id": "never_free", "type": "emit_event", "name": "onboarding.never"}],
			 "no": [{"id": "downgrade", "type": "update_contact", "properties": {"tier": "'basic'"}}]},
			{"id": "activated", "type": "wait_for_event", "event": "project.created", "timeout": "10m",
			 "yes": [{"id": "celebrate", "type": "emit_event", "name": "onboarding.activated",
			          "properties": {"plan": "trigger.properties.plan"}}],
			 "no": [{"id": "never_activated", "type": "emit_event", "name": "onboarding.never"}]},
			{"id": "second_project", "type": "wait_for_event", "event": "project.created", "timeout": "1s",
			 "yes": [{"id": "never_second", "type": "emit_event", "name": "onboarding.never"}],
			 "no": [{"id": "nudge", "type": "send_email", "to": "contact.email",
			         "subject": "'Need a hand?'", "text": "'Reply to this email.'"}]},
			{"id": "linger", "type": "delay", "duration": "2s"},
			{"id": "finished", "type": "emit_event", "name": "onboarding.finished"}
		]`,
		drive: func(ctx context.Context, t *testing.T, c client.Client, workflowID string) {
			// Timers: pause, activated, second_project, linger.
			awaitTimers(ctx, t, c, workflowID, 2)
			signal(ctx, t, c, workflowID, "activated", "project-1")
			// Delivered twice: second_project reads the repeat and ignores it.
			signal(ctx, t, c, workflowID, "activated", "project-1")
			awaitTimers(ctx, t, c, workflowID, 4)
			// Stale by now: left in the channel and drained at the end.
			signal(ctx, t, c, workflowID, "second_project", "project-2")
		},
		want: "completed",
		outcomes: []string{"notify_crm done", "welcome done", "tag done", "is_pro yes", "pause waiting", "pause done",
			"is_free no", "downgrade done", "activated waiting", "activated yes", "celebrate done",
			"second_project waiting", "second_project no", "nudge done", "linger waiting", "linger done", "finished done"},
	},
	{
		name: "wait_look_back",
		steps: `[
			{"id": "ordered", "type": "wait_for_event", "event": "order.placed", "timeout": "1h",
			 "yes": [{"id": "thank", "type": "webhook", "url": "https://crm.example/orders"}],
			 "no": [{"id": "remind", "type": "emit_event", "name": "order.reminded"}]}
		]`,
		lookback: map[string]string{"ordered": "order-1"},
		want:     "completed",
		outcomes: []string{"ordered yes", "thank done"},
	},
	{
		name: "wait_claimed_at_timeout",
		steps: `[
			{"id": "ordered", "type": "wait_for_event", "event": "order.placed", "timeout": "1s",
			 "yes": [{"id": "thank", "type": "webhook", "url": "https://crm.example/orders"}],
			 "no": [{"id": "remind", "type": "emit_event", "name": "order.reminded"}]}
		]`,
		claimed:  map[string]string{"ordered": "order-1"},
		want:     "completed",
		outcomes: []string{"ordered waiting", "ordered yes", "thank done"},
	},
	{
		name: "exit_during_delay",
		steps: `[
			{"id": "notify_crm", "type": "webhook", "url": "https://crm.example/hooks"},
			{"id": "pause", "type": "delay", "duration": "1h"},
			{"id": "never", "type": "update_contact", "last_name": "'Never'"}
		]`,
		drive: func(ctx context.Context, t *testing.T, c client.Client, workflowID string) {
			awaitTimers(ctx, t, c, workflowID, 1)
			require.NoError(t, c.CancelWorkflow(ctx, workflowID, ""))
		},
		want:     "exited",
		outcomes: []string{"notify_crm done", "pause waiting"},
	},
	{
		name: "exit_during_wait",
		steps: `[
			{"id": "ordered", "type": "wait_for_event", "event": "order.placed", "timeout": "1h",
			 "yes": [{"id": "thank", "type": "webhook", "url": "https://crm.example/orders"}]}
		]`,
		drive: func(ctx context.Context, t *testing.T, c client.Client, workflowID string) {
			awaitTimers(ctx, t, c, workflowID, 1)
			require.NoError(t, c.CancelWorkflow(ctx, workflowID, ""))
		},
		want:     "exited",
		outcomes: []string{"ordered waiting"},
	},
	{
		name: "wait_window_closed",
		steps: `[
			{"id": "ordered", "type": "wait_for_event", "event": "order.placed", "timeout": "1h",
			 "yes": [{"id": "thank", "type": "webhook", "url": "https://crm.example/orders"}],
			 "no": [{"id": "remind", "type": "emit_event", "name": "order.reminded"}]}
		]`,
		closed:      map[string]bool{"ordered": true},
		receivedAgo: 2 * time.Hour,
		want:        "completed",
		outcomes:    []string{"ordered no", "remind done"},
	},
	{
		name: "late_start_delay_then_wait",
		steps: `[
			{"id": "notify_crm", "type": "webhook", "url": "https://crm.example/hooks"},
			{"id": "pause", "type": "delay", "duration": "30m"},
			{"id": "ordered", "type": "wait_for_event", "event": "order.placed", "timeout": "30m1s",
			 "yes": [{"id": "thank", "type": "webhook", "url": "https://crm.example/orders"}],
			 "no": [{"id": "remind", "type": "emit_event", "name": "order.reminded"}]}
		]`,
		behind:      map[string]time.Duration{"ordered": 500 * time.Millisecond},
		receivedAgo: time.Hour,
		want:        "completed",
		outcomes:    []string{"notify_crm done", "pause waiting", "pause done", "ordered waiting", "ordered no", "remind done"},
	},
	{
		name: "failed_webhook",
		steps: `[
			{"id": "notify_crm", "type": "webhook", "url": "https://gone.example/hooks"},
			{"id": "never", "type": "emit_event", "name": "never.sent"}
		]`,
		want:     "failed",
		outcomes: []string{"notify_crm failed"},
	},
	{
		name: "multi_any_signal",
		steps: `[
			{"id": "engaged", "type": "wait_for_event", "events": ["chat.started", "call.booked"], "mode": "any",
			 "timeout": "1h",
			 "yes": [{"id": "thank", "type": "webhook", "url": "https://crm.example/engaged",
			          "body": {"how": "'engaged'"}}],
			 "no": [{"id": "remind", "type": "emit_event", "name": "engagement.reminded"}]}
		]`,
		drive: func(ctx context.Context, t *testing.T, c client.Client, workflowID string) {
			awaitTimers(ctx, t, c, workflowID, 1)
			signalEvents(ctx, t, c, workflowID, "engaged", "call-1:call.booked")
		},
		want:     "completed",
		outcomes: []string{"engaged waiting", "engaged yes", "thank done"},
	},
	{
		name: "multi_all_signal",
		steps: `[
			{"id": "fulfilled", "type": "wait_for_event", "events": ["order.paid", "order.shipped"], "mode": "all",
			 "timeout": "1h",
			 "yes": [{"id": "thank", "type": "webhook", "url": "https://crm.example/fulfilled",
			          "body": {"amount": "events['order.paid'].properties.source"}}],
			 "no": [{"id": "remind", "type": "emit_event", "name": "order.reminded"}]}
		]`,
		matched: map[string][]string{"fulfilled": {"paid-1:order.paid"}},
		drive: func(ctx context.Context, t *testing.T, c client.Client, workflowID string) {
			awaitTimers(ctx, t, c, workflowID, 1)
			signalEvents(ctx, t, c, workflowID, "fulfilled", "ship-1:order.shipped", "paid-1:order.paid")
		},
		want:     "completed",
		outcomes: []string{"fulfilled waiting", "fulfilled yes", "thank done"},
	},
	{
		name: "multi_all_timeout_one_of_two",
		steps: `[
			{"id": "fulfilled", "type": "wait_for_event", "events": ["order.paid", "order.shipped"], "mode": "all",
			 "timeout": "1s",
			 "yes": [{"id": "thank", "type": "webhook", "url": "https://crm.example/fulfilled"}],
			 "no": [{"id": "remind", "type": "emit_event", "name": "order.reminded"}]}
		]`,
		matched:  map[string][]string{"fulfilled": {"paid-1:order.paid"}},
		want:     "completed",
		outcomes: []string{"fulfilled waiting", "fulfilled no", "remind done"},
	},
	{
		name: "multi_all_look_back",
		steps: `[
			{"id": "fulfilled", "type": "wait_for_event", "events": ["order.paid", "order.shipped"], "mode": "all",
			 "timeout": "1h",
			 "yes": [{"id": "thank", "type": "webhook", "url": "https://crm.example/fulfilled"}],
			 "no": [{"id": "remind", "type": "emit_event", "name": "order.reminded"}]},
			{"id": "reviewed", "type": "wait_for_event", "event": "review.submitted", "timeout": "1s"}
		]`,
		matched:  map[string][]string{"fulfilled": {"paid-1:order.paid", "ship-1:order.shipped"}},
		complete: true,
		want:     "completed",
		outcomes: []string{"fulfilled yes", "thank done", "reviewed waiting", "reviewed no"},
	},
}

// enrollmentID is a scenario's enrollment id, the same on every run.
func (sc historyScenario) enrollmentID() uuid.UUID {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://signalbox.example/histories/"+sc.name))
}

// input is the scenario's enrollment input, its trigger received at now
// less receivedAgo.
func (sc historyScenario) input(t *testing.T, now time.Time) workflows.EnrollmentInput {
	in := enrollmentInputFor(t, sc.enrollmentID(), sc.steps)
	in.Trigger.ReceivedAt = now.Add(-sc.receivedAgo).UTC()
	return in
}

// path is where the scenario's history is saved.
func (sc historyScenario) path() string {
	return filepath.Join(historyDir, historyGeneration+"_"+sc.name+".json")
}

func TestGenerateHistories(t *testing.T) {
	if !*updateHistories {
		t.Skip("writes histories only with: go test ./workflows/ -run TestGenerateHistories -args -update-histories")
	}
	var todo []historyScenario
	for _, sc := range historyScenarios {
		if _, err := os.Stat(sc.path()); err == nil {
			t.Logf("keeping %s", sc.path())
			continue
		}
		todo = append(todo, sc)
	}
	if len(todo) == 0 {
		t.Skip("every history exists; delete one, or bump historyGeneration, to write new ones")
	}
	cli := os.Getenv("SIGNALBOX_TEMPORAL_CLI")
	if cli == "" {
		cli = filepath.Join("..", "bin", "temporal")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  cli,
		ClientOptions: &client.Options{Logger: quietLogger(), Identity: historyIdentity},
		LogLevel:      "error",
		Stdout:        io.Discard,
		SearchAttributes: temporal.NewSearchAttributes(
			workflows.WorkspaceAttribute.ValueSet(""),
			workflows.AutomationAttribute.ValueSet(""),
			workflows.ContactAttribute.ValueSet(""),
		),
	})
	require.NoError(t, err, "start the dev server from %s (make test builds it)", cli)
	defer func() { require.NoError(t, srv.Stop()) }()
	c := srv.Client()

	fake := newFakeActivities()
	for _, sc := range todo {
		fake.configure(workflows.WorkflowID(sc.enrollmentID().String()), sc)
	}
	w := worker.New(c, workflows.TaskQueue, worker.Options{Identity: historyIdentity})
	workflows.Config{}.Register(w)
	fake.register(w)
	require.NoError(t, w.Start())
	defer w.Stop()

	require.NoError(t, os.MkdirAll(historyDir, 0o755))
	for _, sc := range todo {
		t.Run(sc.name, func(t *testing.T) {
			events := runScenario(ctx, t, c, sc)
			require.Equal(t, sc.outcomes, fake.outcomes(workflows.WorkflowID(sc.enrollmentID().String())))
			for _, e := range events {
				if at := e.GetActivityTaskScheduledEventAttributes(); at != nil {
					require.Contains(t, fakeActivityNames(), at.GetActivityType().GetName())
				}
			}
			raw, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(&historypb.History{Events: events})
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(sc.path(), append(raw, '\n'), 0o644))
			require.NoError(t, replay(sc.path()))
			t.Logf("wrote %s: %d events", sc.path(), len(events))
		})
	}
}

// runScenario starts a scenario's enrollment as the dispatcher does, drives
// it, checks how it ended and returns its history.
func runScenario(ctx context.Context, t *testing.T, c client.Client, sc historyScenario) []*historypb.HistoryEvent {
	in := sc.input(t, time.Now())
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       workflows.WorkflowID(in.EnrollmentID.String()),
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.WorkspaceAttribute.ValueSet(in.WorkspaceID.String()),
			workflows.AutomationAttribute.ValueSet(in.AutomationID.String()),
			workflows.ContactAttribute.ValueSet(in.ContactID.String()),
		),
	}, workflows.EnrollmentWorkflow, in)
	require.NoError(t, err)
	if sc.drive != nil {
		sc.drive(ctx, t, c, run.GetID())
	}
	var res workflows.EnrollmentResult
	err = run.Get(ctx, &res)
	switch sc.want {
	case "completed":
		require.NoError(t, err)
		require.Equal(t, "completed", res.Status)
	case "exited":
		require.True(t, temporal.IsCanceledError(err), "got %v", err)
	case "failed":
		var app *temporal.ApplicationError
		require.ErrorAs(t, err, &app)
		require.Equal(t, activities.ErrTypeRejected, app.Type())
	}
	return history(ctx, t, c, run.GetID(), run.GetRunID())
}

// history fetches a workflow's events so far.
func history(ctx context.Context, t *testing.T, c client.Client, workflowID, runID string) []*historypb.HistoryEvent {
	var events []*historypb.HistoryEvent
	it := c.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		events = append(events, e)
	}
	return events
}

// awaitTimers waits until the workflow has started n timers, so that what
// is sent next arrives while the workflow sleeps or waits.
func awaitTimers(ctx context.Context, t *testing.T, c client.Client, workflowID string, n int) {
	require.Eventually(t, func() bool {
		started := 0
		for _, e := range history(ctx, t, c, workflowID, "") {
			if e.GetEventType() == enumspb.EVENT_TYPE_TIMER_STARTED {
				started++
			}
		}
		return started >= n
	}, 30*time.Second, 20*time.Millisecond, "%d timers in %s", n, workflowID)
}

// signal delivers an event to a wait_for_event step.
func signal(ctx context.Context, t *testing.T, c client.Client, workflowID, stepID, eventID string) {
	require.NoError(t, c.SignalWorkflow(ctx, workflowID, "", workflows.EventSignal, workflows.EventSignalInput{
		EnrollmentID: uuid.MustParse(strings.TrimPrefix(workflowID, "enrollment-")), StepID: stepID, Event: fakeEvent(eventID, "project.created"),
	}))
}

// signalEvents resumes a wait on several events as the record path does:
// one signal with every matched event ("id:name"), the last completing it.
func signalEvents(ctx context.Context, t *testing.T, c client.Client, workflowID, stepID string, matched ...string) {
	events := fakeEvents(matched)
	require.NoError(t, c.SignalWorkflow(ctx, workflowID, "", workflows.EventSignal, workflows.EventSignalInput{
		EnrollmentID: uuid.MustParse(strings.TrimPrefix(workflowID, "enrollment-")), StepID: stepID,
		Event: events[len(events)-1], Events: events,
	}))
}

// fakeEvents makes events from "id:name" pairs.
func fakeEvents(pairs []string) []event.Event {
	var out []event.Event
	for _, p := range pairs {
		id, name, _ := strings.Cut(p, ":")
		out = append(out, fakeEvent(id, name))
	}
	return out
}

func fakeEvent(id, name string) event.Event {
	return event.Event{
		ID:         evID(id),
		Name:       name,
		Properties: json.RawMessage(`{"source":"history"}`),
		OccurredAt: testStart,
	}
}

// fakeActivities stands in for activities.Activities where no database or
// network is wanted: same names, same signatures, canned answers.
type fakeActivities struct {
	// lookback and claimed hold the events RegisterWait and ClearWait
	// return, by workflow id and step id.
	lookback, claimed map[string]event.Event
	closed            map[string]bool
	behind            map[string]time.Duration
	// matched and complete are a wait on several events' matches, by
	// workflow id and step id.
	matched  map[string][]event.Event
	complete map[string]bool

	mu sync.Mutex
	// lines is the step log by workflow id.
	lines map[string][]activities.RecordStepInput
}

func newFakeActivities() *fakeActivities {
	return &fakeActivities{lookback: map[string]event.Event{}, claimed: map[string]event.Event{},
		closed: map[string]bool{}, behind: map[string]time.Duration{}, matched: map[string][]event.Event{},
		complete: map[string]bool{}, lines: map[string][]activities.RecordStepInput{}}
}

// outcomes is the step log of a workflow as "step_id outcome" lines, in
// seq order.
func (f *fakeActivities) outcomes(workflowID string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	lines := slices.Clone(f.lines[workflowID])
	slices.SortFunc(lines, func(x, y activities.RecordStepInput) int { return x.Seq - y.Seq })
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.StepID + " " + l.Outcome
	}
	return out
}

// configure sets up the waits of a scenario run as workflowID.
func (f *fakeActivities) configure(workflowID string, sc historyScenario) {
	for step, id := range sc.lookback {
		f.lookback[workflowID+"/"+step] = fakeEvent(id, "order.placed")
	}
	for step, id := range sc.claimed {
		f.claimed[workflowID+"/"+step] = fakeEvent(id, "order.placed")
	}
	for step := range sc.closed {
		f.closed[workflowID+"/"+step] = true
	}
	for step, d := range sc.behind {
		f.behind[workflowID+"/"+step] = d
	}
	for step, pairs := range sc.matched {
		f.matched[workflowID+"/"+step] = fakeEvents(pairs)
		f.complete[workflowID+"/"+step] = sc.complete
	}
}

// multiResult is a wait on several events as the fake store holds it.
func (f *fakeActivities) multiResult(key string) activities.WaitResult {
	res := activities.WaitResult{Events: f.matched[key]}
	if f.complete[key] {
		last := res.Events[len(res.Events)-1]
		res.Event = &last
	}
	return res
}

// fakeActivity pairs a method of activities.Activities with its fake.
type fakeActivity struct {
	name       string
	real, fake any
}

func (f *fakeActivities) table() []fakeActivity {
	var real *activities.Activities
	return []fakeActivity{
		{"RecordStep", real.RecordStep, f.RecordStep},
		{"FinishEnrollment", real.FinishEnrollment, f.FinishEnrollment},
		{"EvaluateCondition", real.EvaluateCondition, f.EvaluateCondition},
		{"RegisterWait", real.RegisterWait, f.RegisterWait},
		{"ClearWait", real.ClearWait, f.ClearWait},
		{"SendWebhook", real.SendWebhook, f.SendWebhook},
		{"SendEmail", real.SendEmail, f.SendEmail},
		{"UpdateContact", real.UpdateContact, f.UpdateContact},
		{"EmitEvent", real.EmitEvent, f.EmitEvent},
	}
}

func fakeActivityNames() []string {
	var names []string
	for _, fa := range newFakeActivities().table() {
		names = append(names, fa.name)
	}
	return names
}

// activityRegistry is what a worker and a test environment share.
type activityRegistry interface {
	RegisterActivityWithOptions(a any, options activity.RegisterOptions)
}

// register registers each fake under the name of the real activity.
func (f *fakeActivities) register(r activityRegistry) {
	for _, fa := range f.table() {
		r.RegisterActivityWithOptions(fa.fake, activity.RegisterOptions{Name: fa.name})
	}
}

// RecordStep keeps the line, once per seq as the store does.
func (f *fakeActivities) RecordStep(ctx context.Context, in activities.RecordStepInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := activity.GetInfo(ctx).WorkflowExecution.ID
	if !slices.ContainsFunc(f.lines[id], func(l activities.RecordStepInput) bool { return l.Seq == in.Seq }) {
		f.lines[id] = append(f.lines[id], in)
	}
	return nil
}

func (f *fakeActivities) FinishEnrollment(_ context.Context, in activities.FinishInput) (activities.FinishResult, error) {
	return activities.FinishResult{Status: in.Status}, nil
}

// EvaluateCondition knows the literal conditions "true" and "false".
func (f *fakeActivities) EvaluateCondition(_ context.Context, in activities.ConditionInput) (activities.ConditionResult, error) {
	switch in.Expr {
	case "true":
		return activities.ConditionResult{Value: true}, nil
	case "false":
		return activities.ConditionResult{}, nil
	}
	return activities.ConditionResult{Error: "the fake evaluates only true and false"}, nil
}

func (f *fakeActivities) RegisterWait(_ context.Context, in activities.WaitInput) (activities.WaitResult, error) {
	key := in.Scope.WorkflowID + "/" + in.StepID
	if len(in.Events) > 0 {
		return f.multiResult(key), nil
	}
	if e, ok := f.lookback[key]; ok {
		return activities.WaitResult{Event: &e}, nil
	}
	return activities.WaitResult{Closed: f.closed[key]}, nil
}

// ClearWait hands over a claim, or, once, says the database's clock is
// behind.
func (f *fakeActivities) ClearWait(_ context.Context, in activities.WaitInput) (activities.WaitResult, error) {
	key := in.Scope.WorkflowID + "/" + in.StepID
	if len(in.Events) > 0 {
		return f.multiResult(key), nil
	}
	if e, ok := f.claimed[key]; ok {
		return activities.WaitResult{Event: &e}, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if d, ok := f.behind[key]; ok && in.Strict {
		delete(f.behind, key)
		return activities.WaitResult{Remaining: d}, nil
	}
	return activities.WaitResult{}, nil
}

// book does an action's bookkeeping as the real activities do: the step's
// "done" line, and the enrollment's end when asked.
func (f *fakeActivities) book(ctx context.Context, b *activities.Bookkeeping) *activities.Booked {
	if b == nil {
		return nil
	}
	_ = f.RecordStep(ctx, activities.RecordStepInput{EnrollmentID: b.EnrollmentID, Seq: b.Seq, StepID: b.StepID,
		Type: b.Type, Outcome: "done"})
	if b.Finish {
		return &activities.Booked{Status: "completed"}
	}
	return &activities.Booked{}
}

// SendWebhook refuses hosts under gone.example for good.
func (f *fakeActivities) SendWebhook(ctx context.Context, in activities.WebhookInput) (activities.WebhookResult, error) {
	if strings.Contains(in.Step.URL, "gone.example") {
		return activities.WebhookResult{}, temporal.NewNonRetryableApplicationError(
			"webhook: receiver answered 410 Gone", activities.ErrTypeRejected, nil)
	}
	res := activities.WebhookResult{Status: 204, WebhookID: activities.WebhookID(in.Scope.WorkflowID, in.StepID)}
	res.Booked = f.book(ctx, in.Book)
	return res, nil
}

func (f *fakeActivities) SendEmail(ctx context.Context, in activities.EmailInput) (activities.EmailResult, error) {
	res := activities.EmailResult{MessageID: activities.EmailMessageID(in.Scope.WorkflowID, in.StepID, activities.DefaultEmailFrom)}
	res.Booked = f.book(ctx, in.Book)
	return res, nil
}

func (f *fakeActivities) UpdateContact(ctx context.Context, in activities.UpdateContactInput) (activities.UpdateContactResult, error) {
	res := activities.UpdateContactResult{}
	if len(in.Step.Properties) > 0 {
		res.Properties = map[string]any{}
		for _, k := range in.Step.Properties.Keys() {
			res.Properties[k] = "value of " + in.Step.Properties[k]
		}
	}
	res.Booked = f.book(ctx, in.Book)
	return res, nil
}

func (f *fakeActivities) EmitEvent(ctx context.Context, in activities.EmitEventInput) (activities.EmitEventResult, error) {
	id := uuid.NewSHA1(uuid.NameSpaceURL, []byte(in.Scope.WorkflowID+"/"+in.StepID))
	res := activities.EmitEventResult{EventID: id.String()}
	res.Booked = f.book(ctx, in.Book)
	return res, nil
}

// TestFakeActivitiesMatchRealOnes keeps the fakes honest: each has its real
// activity's signature and is registered under the name the SDK gives the
// real method value, and the scenarios that need no driving end the same
// way in the test environment as on the server.
func TestFakeActivitiesMatchRealOnes(t *testing.T) {
	t.Parallel()
	fake := newFakeActivities()
	for _, fa := range fake.table() {
		require.Equal(t, reflect.TypeOf(fa.real), reflect.TypeOf(fa.fake), fa.name)
	}
	for _, sc := range historyScenarios {
		if sc.drive != nil && sc.name != "every_step" {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			var suite testsuite.WorkflowTestSuite
			env := suite.NewTestWorkflowEnvironment()
			env.SetTestTimeout(time.Minute) // wall clock; the default 3 s is short on a loaded machine
			env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: workflows.WorkflowID(sc.enrollmentID().String())})
			workflows.Config{}.Register(env)
			f := newFakeActivities()
			f.configure(workflows.WorkflowID(sc.enrollmentID().String()), sc)
			// Mocking the real method values, not registering the fakes by
			// name, keeps the SDK's name aliasing out of the way: the names
			// seen below are the ones the SDK derives from the methods.
			for _, fa := range f.table() {
				env.OnActivity(fa.real, mock.Anything, mock.Anything).Return(fa.fake)
			}
			called := map[string]bool{}
			env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
				called[info.ActivityType.Name] = true
			})
			env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, _ []any) {
				called[info.ActivityType.Name] = true
			})
			env.ExecuteWorkflow(workflows.EnrollmentWorkflow, sc.input(t, env.Now()))
			if sc.want == "completed" {
				require.NoError(t, env.GetWorkflowError())
			} else {
				require.Error(t, env.GetWorkflowError())
			}
			if sc.drive == nil {
				// Nothing to drive: the scenario ends here as on the server.
				require.Equal(t, sc.outcomes, f.outcomes(workflows.WorkflowID(sc.enrollmentID().String())))
			} else {
				// Undriven, every_step's waits time out, but every activity
				// runs, under the name its fake is registered with, except
				// FinishEnrollment: the last step, an action, ends the
				// enrollment in its own activity.
				want := slices.DeleteFunc(fakeActivityNames(), func(n string) bool { return n == "FinishEnrollment" })
				require.ElementsMatch(t, want, slices.Collect(maps.Keys(called)))
			}
		})
	}
}

func quietLogger() log.Logger {
	return log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

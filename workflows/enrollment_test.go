package workflows_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/signalbox/signalbox/activities"
	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/event"
	"github.com/signalbox/signalbox/workflows"
)

// a supplies method values, as the workflow does: the SDK names each mocked
// activity after the method.
var a *activities.Activities

// Fixed identities, so that scopes and inputs can be compared exactly.
var (
	testEnrollment = uuid.MustParse("5f0c3a52-7d1e-4a59-9a43-0d7f1f3c2b10")
	testWorkspace  = uuid.MustParse("0b8f3f7e-5c1a-4c36-8c55-2f0f3e4a9d01")
	testAutomation = uuid.MustParse("8a1d6c2e-3b4f-4e5a-9c7d-1e2f3a4b5c6d")
	testContact    = uuid.MustParse("c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f")
)

// evID is the id of a test event named for what it is ("ev-1"), the same
// on every run.
func evID(name string) uuid.UUID {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://signalbox.example/events/"+name))
}

// testStart is the virtual time every test workflow starts at.
var testStart = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// line is one RecordStep call and the virtual time it ran at.
type line struct {
	activities.RecordStepInput
	At time.Time
}

// harness is a test workflow environment with the bookkeeping activities
// mocked and every activity call, timer and step-log line recorded.
type harness struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment

	mu     sync.Mutex
	lines  []line
	finish []activities.FinishInput
	calls  []call
	timers []time.Duration
}

// call is one activity attempt as the environment started it: remote
// activities come with encoded arguments, local ones with the values.
type call struct {
	name   string
	args   converter.EncodedValues
	values []any
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t, workflows.Config{})
}

// newHarnessWith is newHarness with the workflow under cfg.
func newHarnessWith(t *testing.T, cfg workflows.Config) *harness {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	// The suite's default of 3 s of wall clock per run is too short on a
	// loaded 2-core machine; simulated time is what the tests measure.
	env.SetTestTimeout(time.Minute)
	env.SetStartTime(testStart)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{
		ID: workflows.WorkflowID(testEnrollment.String()), TaskQueue: workflows.TaskQueue,
	})
	cfg.Register(env)
	h := &harness{t: t, env: env}
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.calls = append(h.calls, call{name: info.ActivityType.Name, args: args})
	})
	env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, args []any) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.calls = append(h.calls, call{name: info.ActivityType.Name, values: args})
	})
	env.SetOnTimerScheduledListener(func(_ string, d time.Duration) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.timers = append(h.timers, d)
	})
	env.OnActivity(a.RecordStep, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RecordStepInput) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.lines = append(h.lines, line{RecordStepInput: in, At: env.Now()})
			return nil
		})
	env.OnActivity(a.FinishEnrollment, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.FinishInput) (activities.FinishResult, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.finish = append(h.finish, in)
			return activities.FinishResult{Status: in.Status}, nil
		})
	return h
}

// run executes an enrollment of the test contact in an automation made of
// steps (a JSON array), triggered by a "user.signed_up" event.
func (h *harness) run(steps string) {
	h.t.Helper()
	h.env.ExecuteWorkflow(workflows.EnrollmentWorkflow, enrollmentInput(h.t, steps))
	require.True(h.t, h.env.IsWorkflowCompleted())
}

// enrollmentInput builds the input of the test enrollment in an automation
// made of steps; the definition goes through definition.Load as a saved one
// does.
func enrollmentInput(t *testing.T, steps string) workflows.EnrollmentInput {
	t.Helper()
	return enrollmentInputFor(t, testEnrollment, steps)
}

// enrollmentInputFor is enrollmentInput for another enrollment id.
func enrollmentInputFor(t *testing.T, enrollmentID uuid.UUID, steps string) workflows.EnrollmentInput {
	t.Helper()
	doc := `{"name": "test", "trigger": {"event": "user.signed_up"}, "exit_on": ["user.deleted"], "steps": ` + steps + `}`
	def, problems := definition.Load([]byte(doc), nil)
	require.Empty(t, problems)
	return workflows.EnrollmentInput{
		EnrollmentID: enrollmentID, WorkspaceID: testWorkspace, AutomationID: testAutomation, Version: 1,
		ContactID: testContact, Definition: *def, Trigger: triggerEvent(),
	}
}

func triggerEvent() event.Event {
	return event.Event{ID: uuid.MustParse("7e1f0c1a-0000-4000-8000-000000000001"), Name: "user.signed_up",
		Properties: json.RawMessage(`{"plan":"pro"}`), OccurredAt: testStart.Add(-time.Minute)}
}

// outcomes is the step log as "step_id outcome" lines, after checking that
// seq counts up from 1 and each line names its step's type.
func (h *harness) outcomes(types map[string]string) []string {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, len(h.lines))
	for i, l := range h.lines {
		require.Equal(h.t, i+1, l.Seq, "seq of line %d", i)
		require.Equal(h.t, testEnrollment, l.EnrollmentID)
		if want, ok := types[l.StepID]; ok {
			require.Equal(h.t, want, l.Type, "type of step %s", l.StepID)
		}
		out[i] = l.StepID + " " + l.Outcome
	}
	return out
}

// line returns the step log line for a step and outcome.
func (h *harness) line(stepID, outcome string) line {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range h.lines {
		if l.StepID == stepID && l.Outcome == outcome {
			return l
		}
	}
	h.t.Fatalf("no line %s %s in the step log", stepID, outcome)
	return line{}
}

// detail decodes a line's detail.
func (l line) detail(t *testing.T) map[string]any {
	t.Helper()
	var d map[string]any
	if l.Detail != nil {
		require.NoError(t, json.Unmarshal(l.Detail, &d))
	}
	return d
}

// finished returns the one FinishEnrollment call.
func (h *harness) finished() activities.FinishInput {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Len(h.t, h.finish, 1, "FinishEnrollment calls")
	return h.finish[0]
}

// inputs decodes the input of every attempt of the named activity.
func inputs[T any](h *harness, name string) []T {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []T
	for _, c := range h.calls {
		if c.name == name {
			var in T
			if c.args != nil {
				require.NoError(h.t, c.args.Get(&in))
			} else {
				in = c.values[0].(T)
			}
			out = append(out, in)
		}
	}
	return out
}

// callNames lists the activity attempts in the order they started.
func (h *harness) callNames() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	names := make([]string, len(h.calls))
	for i, c := range h.calls {
		names[i] = c.name
	}
	return names
}

// elapsed is how much virtual time the enrollment took.
func (h *harness) elapsed() time.Duration { return h.env.Now().Sub(testStart) }

// signalAt sends the event signal for stepID after d of virtual time.
func (h *harness) signalAt(d time.Duration, stepID, eventID string) {
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(workflows.EventSignal, workflows.EventSignalInput{
			EnrollmentID: testEnrollment, StepID: stepID,
			Event: event.Event{ID: evID(eventID), Name: "order.placed", Properties: json.RawMessage(`{}`), OccurredAt: testStart.Add(d),
				ReceivedAt: testStart.Add(d)},
		})
	}, d)
}

// completed asserts the enrollment completed and returns its result.
func (h *harness) completed() workflows.EnrollmentResult {
	h.t.Helper()
	require.NoError(h.t, h.env.GetWorkflowError())
	var res workflows.EnrollmentResult
	require.NoError(h.t, h.env.GetWorkflowResult(&res))
	require.Equal(h.t, "completed", res.Status)
	require.Equal(h.t, activities.FinishInput{EnrollmentID: testEnrollment, Status: "completed"}, h.finished())
	return res
}

func TestEnrollmentLinear(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.env.OnActivity(a.SendWebhook, mock.Anything, mock.Anything).Return(
		activities.WebhookResult{Status: 204, WebhookID: "msg_1"}, nil)
	h.env.OnActivity(a.UpdateContact, mock.Anything, mock.Anything).Return(
		activities.UpdateContactResult{Properties: map[string]any{"stage": "welcomed"}}, nil)
	h.env.OnActivity(a.EmitEvent, mock.Anything, mock.Anything).Return(
		activities.EmitEventResult{EventID: "e-1", Triggered: 1}, nil)

	h.run(`[
		{"id": "hook", "type": "webhook", "url": "https://crm.example/hooks", "body": {"email": "contact.email"}},
		{"id": "pause", "type": "delay", "duration": "1d12h"},
		{"id": "tag", "type": "update_contact", "properties": {"stage": "'welcomed'"}},
		{"id": "emit", "type": "emit_event", "name": "onboarding.finished"}
	]`)

	res := h.completed()
	require.Equal(t, []string{"hook done", "pause waiting", "pause done", "tag done", "emit done"},
		h.outcomes(map[string]string{"hook": "webhook", "pause": "delay", "tag": "update_contact", "emit": "emit_event"}))
	require.Equal(t, 5, res.Steps)

	// The delay slept 36h of virtual time, on one timer, and nothing else took time.
	require.Equal(t, []time.Duration{36 * time.Hour}, h.timers)
	require.Equal(t, 36*time.Hour, h.elapsed())
	require.Equal(t, 36*time.Hour, h.line("pause", "done").At.Sub(h.line("pause", "waiting").At))
	require.Equal(t, map[string]any{"duration": "1d12h", "until": "2026-03-03T21:00:00Z"}, h.line("pause", "waiting").detail(t))
	require.Equal(t, map[string]any{"status": float64(204), "webhook_id": "msg_1"}, h.line("hook", "done").detail(t))

	// Each action gets the enrollment's scope and its own step.
	scope := activities.Scope{WorkspaceID: testWorkspace, EnrollmentID: testEnrollment, ContactID: testContact,
		WorkflowID: workflows.WorkflowID(testEnrollment.String()), Trigger: triggerEvent()}
	hooks := inputs[activities.WebhookInput](h, "SendWebhook")
	require.Len(t, hooks, 1)
	require.Equal(t, "hook", hooks[0].StepID)
	require.Equal(t, "https://crm.example/hooks", hooks[0].Step.URL)
	requireScope(t, scope, hooks[0].Scope)
	updates := inputs[activities.UpdateContactInput](h, "UpdateContact")
	require.Len(t, updates, 1)
	require.Equal(t, "tag", updates[0].StepID)
	requireScope(t, scope, updates[0].Scope)
	emits := inputs[activities.EmitEventInput](h, "EmitEvent")
	require.Len(t, emits, 1)
	require.Equal(t, "onboarding.finished", emits[0].Step.Name)
	requireScope(t, scope, emits[0].Scope)
}

// requireScope compares scopes, with times compared as instants.
func requireScope(t *testing.T, want, got activities.Scope) {
	t.Helper()
	require.True(t, want.Trigger.OccurredAt.Equal(got.Trigger.OccurredAt))
	want.Trigger.OccurredAt, got.Trigger.OccurredAt = time.Time{}, time.Time{}
	require.Equal(t, want, got)
}

func TestEnrollmentRetriesTransientFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.env.OnActivity(a.SendWebhook, mock.Anything, mock.Anything).Return(
		activities.WebhookResult{}, errors.New("receiver answered 503")).Once()
	h.env.OnActivity(a.SendWebhook, mock.Anything, mock.Anything).Return(
		activities.WebhookResult{Status: 200, WebhookID: "msg_1"}, nil).Once()

	h.run(`[{"id": "hook", "type": "webhook", "url": "https://crm.example/hooks"}]`)

	h.completed()
	require.Equal(t, []string{"hook done"}, h.outcomes(nil))
	require.Len(t, inputs[activities.WebhookInput](h, "SendWebhook"), 2)
}

func TestEnrollmentBranch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		result activities.ConditionResult
		want   []string
		detail map[string]any
	}{
		{"yes", activities.ConditionResult{Value: true},
			[]string{"vip yes", "tag_vip done", "after done"}, map[string]any{"branch": "yes"}},
		{"no", activities.ConditionResult{Value: false},
			[]string{"vip no", "tag_basic done", "after done"}, map[string]any{"branch": "no"}},
		{"error counts as no", activities.ConditionResult{Error: "no such key: plan"},
			[]string{"vip no", "tag_basic done", "after done"}, map[string]any{"branch": "no", "error": "no such key: plan"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.env.OnActivity(a.EvaluateCondition, mock.Anything, mock.Anything).Return(tc.result, nil)
			h.env.OnActivity(a.UpdateContact, mock.Anything, mock.Anything).Return(activities.UpdateContactResult{}, nil)
			h.env.OnActivity(a.EmitEvent, mock.Anything, mock.Anything).Return(activities.EmitEventResult{}, nil)

			h.run(`[
				{"id": "vip", "type": "branch", "condition": "contact.properties.plan == 'pro'",
				 "yes": [{"id": "tag_vip", "type": "update_contact", "properties": {"tier": "'vip'"}}],
				 "no": [{"id": "tag_basic", "type": "update_contact", "properties": {"tier": "'basic'"}}]},
				{"id": "after", "type": "emit_event", "name": "tiered"}
			]`)

			h.completed()
			require.Equal(t, tc.want, h.outcomes(map[string]string{"vip": "branch"}))
			require.Equal(t, tc.detail, h.line("vip", tc.want[0][len("vip "):]).detail(t))
			conds := inputs[activities.ConditionInput](h, "EvaluateCondition")
			require.Len(t, conds, 1)
			require.Equal(t, "contact.properties.plan == 'pro'", conds[0].Expr)
			require.Equal(t, testContact, conds[0].Scope.ContactID)
			require.Len(t, inputs[activities.UpdateContactInput](h, "UpdateContact"), 1)
		})
	}
}

// waitSteps is a wait_for_event step with a day's timeout and one action on
// each path.
const waitSteps = `[
	{"id": "wait", "type": "wait_for_event", "event": "order.placed", "timeout": "1d",
	 "condition": "event.properties.total > 0",
	 "yes": [{"id": "thanks", "type": "emit_event", "name": "thanked"}],
	 "no": [{"id": "nudge", "type": "emit_event", "name": "nudged"}]}
]`

// mockWait mocks the wait activities and the path actions.
func (h *harness) mockWait(registered, cleared *event.Event) {
	h.env.OnActivity(a.RegisterWait, mock.Anything, mock.Anything).Return(activities.WaitResult{Event: registered}, nil)
	h.env.OnActivity(a.ClearWait, mock.Anything, mock.Anything).Return(activities.WaitResult{Event: cleared}, nil)
	h.env.OnActivity(a.EmitEvent, mock.Anything, mock.Anything).Return(activities.EmitEventResult{}, nil)
}

func TestEnrollmentWaitLookBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mockWait(&event.Event{ID: evID("ev-early"), Name: "order.placed"}, nil)

	h.run(waitSteps)

	h.completed()
	// Found at registration: the step never logs "waiting".
	require.Equal(t, []string{"wait yes", "thanks done"}, h.outcomes(map[string]string{"wait": "wait_for_event"}))
	require.Equal(t, map[string]any{"branch": "yes", "event_id": evID("ev-early").String()}, h.line("wait", "yes").detail(t))
	require.Empty(t, h.timers, "no timer when the look-back found the event")
	require.Zero(t, h.elapsed())
	h.env.AssertActivityNumberOfCalls(t, "ClearWait", 0)

	// The registration carries the step, the awaited event and its window.
	regs := inputs[activities.WaitInput](h, "RegisterWait")
	require.Len(t, regs, 1)
	require.Equal(t, "wait", regs[0].StepID)
	require.Equal(t, "order.placed", regs[0].Event)
	require.Equal(t, "event.properties.total > 0", regs[0].Condition)
	require.True(t, regs[0].BeganAt.Equal(testStart))
	require.True(t, regs[0].ExpiresAt.Equal(testStart.Add(24*time.Hour)))
	require.Equal(t, workflows.WorkflowID(testEnrollment.String()), regs[0].Scope.WorkflowID)
}

func TestEnrollmentWaitSignal(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mockWait(nil, nil)
	h.signalAt(3*time.Hour, "wait", "ev-1")

	h.run(waitSteps)

	h.completed()
	require.Equal(t, []string{"wait waiting", "wait yes", "thanks done"}, h.outcomes(nil))
	require.Equal(t, map[string]any{"branch": "yes", "event_id": evID("ev-1").String()}, h.line("wait", "yes").detail(t))
	require.Equal(t, 3*time.Hour, h.elapsed(), "the signal ends the wait, not the timeout")
	require.Equal(t, []time.Duration{24 * time.Hour}, h.timers)
	require.Equal(t, map[string]any{"event": "order.placed", "timeout": "1d", "from": "2026-03-02T09:00:00Z",
		"until": "2026-03-03T09:00:00Z"}, h.line("wait", "waiting").detail(t))
	// "waiting" is logged once the wait is registered; the signal is the
	// claim the record path won, so nothing needs clearing.
	require.Equal(t, []string{"RegisterWait", "RecordStep", "RecordStep", "EmitEvent", "RecordStep",
		"FinishEnrollment"}, h.callNames())
}

// legacy makes the enrollment one that reached its first delay or wait
// before WaitWindowsChange, as a history recorded then replays.
func (h *harness) legacy() {
	h.env.OnGetVersion(workflows.WaitWindowsChange, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
}

func TestEnrollmentLegacyWaitSignal(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.legacy()
	h.mockWait(nil, nil)
	h.env.OnActivity(a.SendWebhook, mock.Anything, mock.Anything).Return(activities.WebhookResult{Status: 200}, nil)
	h.signalAt(3*time.Hour, "wait", "ev-1")
	h.env.RegisterDelayedCallback(func() {}, 2*time.Hour)

	h.run(`[
		{"id": "pause", "type": "delay", "duration": "2h"},
		{"id": "wait", "type": "wait_for_event", "event": "order.placed", "timeout": "1d",
		 "yes": [{"id": "thanks", "type": "emit_event", "name": "thanked"}]}
	]`)

	h.completed()
	require.Equal(t, []string{"pause waiting", "pause done", "wait waiting", "wait yes", "thanks done"}, h.outcomes(nil))
	require.Equal(t, map[string]any{"duration": "2h"}, h.line("pause", "waiting").detail(t))
	require.Equal(t, map[string]any{"event": "order.placed", "timeout": "1d"}, h.line("wait", "waiting").detail(t))
	// The window opened when the workflow ran the step, and the wait was
	// cleared from the index once resumed.
	regs := inputs[activities.WaitInput](h, "RegisterWait")
	require.Len(t, regs, 1)
	require.True(t, regs[0].BeganAt.Equal(testStart.Add(2*time.Hour)))
	require.Zero(t, regs[0].After)
	require.False(t, regs[0].Strict)
	require.Equal(t, []string{"RecordStep", "RecordStep", "RegisterWait", "RecordStep", "ClearWait", "RecordStep",
		"EmitEvent", "RecordStep", "FinishEnrollment"}, h.callNames())
}

// lateTrigger is the trigger of an enrollment whose workflow started late:
// the event was recorded 90 minutes before the workflow ran (Temporal was
// down, say).
func lateTrigger(t *testing.T, steps string) workflows.EnrollmentInput {
	in := enrollmentInput(t, steps)
	in.Trigger.ReceivedAt = testStart.Add(-90 * time.Minute)
	return in
}

func TestEnrollmentWaitWindowOpensAtTrigger(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mockWait(nil, nil)
	h.signalAt(time.Hour, "wait", "ev-1")

	h.env.ExecuteWorkflow(workflows.EnrollmentWorkflow, lateTrigger(t, waitSteps))

	h.completed()
	regs := inputs[activities.WaitInput](h, "RegisterWait")
	require.Len(t, regs, 1)
	// The window opened at the trigger's receipt, after the trigger itself,
	// and its timeout runs from there: the timer is shorter by the delay.
	require.True(t, regs[0].BeganAt.Equal(testStart.Add(-90*time.Minute)))
	require.Equal(t, triggerEvent().ID, regs[0].After)
	require.True(t, regs[0].ExpiresAt.Equal(testStart.Add(-90*time.Minute+24*time.Hour)))
	require.True(t, regs[0].Strict)
	require.Equal(t, []time.Duration{24*time.Hour - 90*time.Minute}, h.timers)
	require.Equal(t, []string{"wait waiting", "wait yes", "thanks done"}, h.outcomes(nil))
}

func TestEnrollmentWaitWindowClosedBeforeArrival(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		reg      activities.WaitResult
		outcomes []string
	}{
		{"event inside the window", activities.WaitResult{Event: &event.Event{ID: evID("ev-1")}},
			[]string{"wait yes", "thanks done"}},
		{"nothing inside the window", activities.WaitResult{Closed: true},
			[]string{"wait no", "nudge done"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.env.OnActivity(a.RegisterWait, mock.Anything, mock.Anything).Return(tc.reg, nil)
			h.env.OnActivity(a.EmitEvent, mock.Anything, mock.Anything).Return(activities.EmitEventResult{}, nil)
			in := enrollmentInput(t, waitSteps)
			in.Trigger.ReceivedAt = testStart.Add(-48 * time.Hour)

			h.env.ExecuteWorkflow(workflows.EnrollmentWorkflow, in)

			// The workflow arrived after its window closed: the outcome
			// comes at once, with no timer and no waiting.
			h.completed()
			require.Equal(t, tc.outcomes, h.outcomes(nil))
			require.Empty(t, h.timers)
			require.Zero(t, h.elapsed())
			h.env.AssertActivityNumberOfCalls(t, "ClearWait", 0)
			if tc.reg.Closed {
				require.Equal(t, map[string]any{"branch": "no", "reason": "window closed"}, h.line("wait", "no").detail(t))
			}
		})
	}
}

func TestEnrollmentWaitTimeoutFollowsDatabaseClock(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.env.OnActivity(a.RegisterWait, mock.Anything, mock.Anything).Return(activities.WaitResult{}, nil)
	// At the timer, PostgreSQL's clock is 2s behind: the window is still
	// open, and the workflow waits out the rest before it times out.
	h.env.OnActivity(a.ClearWait, mock.Anything, mock.Anything).Return(activities.WaitResult{Remaining: 2 * time.Second}, nil).Once()
	h.env.OnActivity(a.ClearWait, mock.Anything, mock.Anything).Return(activities.WaitResult{}, nil).Once()
	h.env.OnActivity(a.EmitEvent, mock.Anything, mock.Anything).Return(activities.EmitEventResult{}, nil)

	h.run(waitSteps)

	h.completed()
	require.Equal(t, []time.Duration{24 * time.Hour, 2 * time.Second}, h.timers)
	require.Equal(t, 24*time.Hour+2*time.Second, h.elapsed())
	require.Equal(t, []string{"wait waiting", "wait no", "nudge done"}, h.outcomes(nil))
	h.env.AssertActivityNumberOfCalls(t, "ClearWait", 2)
}

func TestEnrollmentLogicalClockAcrossSteps(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mockWait(nil, nil)
	h.env.OnActivity(a.SendWebhook, mock.Anything, mock.Anything).Return(activities.WebhookResult{Status: 200}, nil)
	// The first wait is resumed by an event recorded 10 minutes into its
	// window (before the workflow got there), delivered a minute later.
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(workflows.EventSignal, workflows.EventSignalInput{EnrollmentID: testEnrollment, StepID: "first",
			Event: event.Event{ID: evID("ev-1"), Name: "order.placed", ReceivedAt: testStart.Add(-20 * time.Minute)}})
	}, time.Minute)

	h.env.ExecuteWorkflow(workflows.EnrollmentWorkflow, lateTrigger(t, `[
		{"id": "hook", "type": "webhook", "url": "https://crm.example/hooks"},
		{"id": "pause", "type": "delay", "duration": "1h"},
		{"id": "first", "type": "wait_for_event", "event": "order.placed", "timeout": "1h"},
		{"id": "second", "type": "wait_for_event", "event": "order.placed", "timeout": "2h"},
		{"id": "third", "type": "wait_for_event", "event": "order.placed", "timeout": "1h"}
	]`))

	h.completed()
	regs := inputs[activities.WaitInput](h, "RegisterWait")
	require.Len(t, regs, 3)
	// The webhook took no logical time; the delay ended an hour after the
	// trigger (30 minutes ago by the workflow's clock), so it did not sleep.
	require.True(t, regs[0].BeganAt.Equal(testStart.Add(-30*time.Minute)), "first opens %s", regs[0].BeganAt)
	require.Zero(t, regs[0].After)
	// The second opens at the receipt of the event that resumed the first,
	// after that event; the third where the second timed out.
	require.True(t, regs[1].BeganAt.Equal(testStart.Add(-20*time.Minute)), "second opens %s", regs[1].BeganAt)
	require.Equal(t, evID("ev-1"), regs[1].After)
	require.True(t, regs[2].BeganAt.Equal(testStart.Add(100*time.Minute)), "third opens %s", regs[2].BeganAt)
	require.Zero(t, regs[2].After)
	require.Equal(t, []string{"hook done", "pause waiting", "pause done", "first waiting", "first yes", "second waiting",
		"second no", "third waiting", "third no"}, h.outcomes(nil))
}

func TestEnrollmentWaitTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mockWait(nil, nil)

	h.run(waitSteps)

	h.completed()
	require.Equal(t, []string{"wait waiting", "wait no", "nudge done"}, h.outcomes(nil))
	require.Equal(t, map[string]any{"branch": "no", "reason": "timeout"}, h.line("wait", "no").detail(t))
	require.Equal(t, 24*time.Hour, h.elapsed())
	clears := inputs[activities.WaitInput](h, "ClearWait")
	require.Len(t, clears, 1)
	require.Equal(t, "wait", clears[0].StepID)
}

func TestEnrollmentWaitClaimedAtTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	// An event claimed the wait in the instant the timer fired; its signal
	// never arrives, but ClearWait hands it over.
	h.mockWait(nil, &event.Event{ID: evID("ev-late"), Name: "order.placed"})

	h.run(waitSteps)

	h.completed()
	require.Equal(t, []string{"wait waiting", "wait yes", "thanks done"}, h.outcomes(nil))
	require.Equal(t, map[string]any{"branch": "yes", "event_id": evID("ev-late").String()}, h.line("wait", "yes").detail(t))
	require.Equal(t, 24*time.Hour, h.elapsed())
}

func TestEnrollmentWaitIgnoresOtherStepsAndDuplicates(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mockWait(nil, nil)
	h.signalAt(1*time.Hour, "second", "ev-0") // for a step not yet reached: dropped
	h.signalAt(2*time.Hour, "first", "ev-1")  // resumes first
	h.signalAt(3*time.Hour, "second", "ev-1") // the same event again: a duplicate

	h.run(`[
		{"id": "first", "type": "wait_for_event", "event": "order.placed", "timeout": "10h"},
		{"id": "second", "type": "wait_for_event", "event": "order.placed", "timeout": "10h",
		 "yes": [{"id": "thanks", "type": "emit_event", "name": "thanked"}],
		 "no": [{"id": "nudge", "type": "emit_event", "name": "nudged"}]}
	]`)

	h.completed()
	require.Equal(t, []string{"first waiting", "first yes", "second waiting", "second no", "nudge done"}, h.outcomes(nil))
	require.Equal(t, evID("ev-1").String(), h.line("first", "yes").detail(t)["event_id"])
	require.Equal(t, 12*time.Hour, h.elapsed(), "second waits its full 10h from 2h")
}

func TestEnrollmentDrainsStaleSignals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mockWait(nil, nil)
	// The event arrives twice (at-least-once delivery), and another one
	// arrives after the wait is over; none is read by a step.
	h.signalAt(1*time.Hour, "wait", "ev-1")
	h.signalAt(1*time.Hour+time.Minute, "wait", "ev-1")
	h.signalAt(1*time.Hour+2*time.Minute, "wait", "ev-2")

	h.run(`[
		{"id": "wait", "type": "wait_for_event", "event": "order.placed", "timeout": "1d",
		 "yes": [{"id": "cool", "type": "delay", "duration": "1h"}]}
	]`)

	h.completed()
	require.Equal(t, []string{"wait waiting", "wait yes", "cool waiting", "cool done"}, h.outcomes(nil))
	require.Equal(t, evID("ev-1").String(), h.line("wait", "yes").detail(t)["event_id"])
}

func TestEnrollmentExitDuringDelay(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.env.OnActivity(a.SendWebhook, mock.Anything, mock.Anything).Return(activities.WebhookResult{Status: 200}, nil)
	h.env.OnActivity(a.UpdateContact, mock.Anything, mock.Anything).Return(activities.UpdateContactResult{}, nil)
	h.env.RegisterDelayedCallback(h.env.CancelWorkflow, time.Hour)

	h.run(`[
		{"id": "hook", "type": "webhook", "url": "https://crm.example/hooks"},
		{"id": "pause", "type": "delay", "duration": "3d"},
		{"id": "tag", "type": "update_contact", "first_name": "'Ada'"}
	]`)

	err := h.env.GetWorkflowError()
	require.Error(t, err)
	require.True(t, temporal.IsCanceledError(err), "got %v", err)
	require.Equal(t, activities.FinishInput{EnrollmentID: testEnrollment, Status: "exited", Reason: "cancelled"}, h.finished())
	require.Equal(t, []string{"hook done", "pause waiting"}, h.outcomes(nil))
	require.Equal(t, time.Hour, h.elapsed())
	h.env.AssertActivityNumberOfCalls(t, "UpdateContact", 0)
}

func TestEnrollmentExitDuringWait(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mockWait(nil, nil)
	h.env.RegisterDelayedCallback(h.env.CancelWorkflow, 5*time.Hour)

	h.run(waitSteps)

	err := h.env.GetWorkflowError()
	require.True(t, temporal.IsCanceledError(err), "got %v", err)
	require.Equal(t, activities.FinishInput{EnrollmentID: testEnrollment, Status: "exited", Reason: "cancelled"}, h.finished())
	require.Equal(t, []string{"wait waiting"}, h.outcomes(nil))
	require.Equal(t, 5*time.Hour, h.elapsed())
	// FinishEnrollment drops the wait's index row, so ClearWait is not needed.
	h.env.AssertActivityNumberOfCalls(t, "ClearWait", 0)
	h.env.AssertActivityNumberOfCalls(t, "EmitEvent", 0)
}

func TestEnrollmentPermanentFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.env.OnActivity(a.SendWebhook, mock.Anything, mock.Anything).Return(activities.WebhookResult{},
		temporal.NewNonRetryableApplicationError("receiver answered 410 Gone", activities.ErrTypeRejected, nil))
	h.env.OnActivity(a.EmitEvent, mock.Anything, mock.Anything).Return(activities.EmitEventResult{}, nil)

	h.run(`[
		{"id": "hook", "type": "webhook", "url": "https://crm.example/hooks"},
		{"id": "emit", "type": "emit_event", "name": "never.sent"}
	]`)

	err := h.env.GetWorkflowError()
	require.Error(t, err)
	require.False(t, temporal.IsCanceledError(err))
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app)
	require.Equal(t, activities.ErrTypeRejected, app.Type())

	fin := h.finished()
	require.Equal(t, "failed", fin.Status)
	require.Contains(t, fin.Reason, "410 Gone")
	require.Equal(t, []string{"hook failed"}, h.outcomes(nil))
	require.Contains(t, h.line("hook", "failed").detail(t)["error"], "410 Gone")
	// Permanent: one attempt, no retries, and the enrollment stops there.
	require.Len(t, inputs[activities.WebhookInput](h, "SendWebhook"), 1)
	h.env.AssertActivityNumberOfCalls(t, "EmitEvent", 0)
}

func TestEnrollmentCurrentStepQuery(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		want workflows.StepState
	}{
		{"delay", workflows.StepState{StepID: "pause", Type: "delay", Since: testStart.Add(time.Hour)}},
		{"wait", workflows.StepState{StepID: "wait", Type: "wait_for_event", Since: testStart.Add(3 * time.Hour),
			Waiting: "order.placed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.mockWait(nil, nil)
			var (
				got      workflows.StepState
				queryErr error
			)
			// The query runs an hour into the step it looks at.
			h.env.RegisterDelayedCallback(func() {
				val, err := h.env.QueryWorkflow(workflows.CurrentStepQuery)
				if err == nil {
					err = val.Get(&got)
				}
				queryErr = err
			}, tc.want.Since.Sub(testStart)+time.Hour)

			h.run(`[
				{"id": "first", "type": "delay", "duration": "1h"},
				{"id": "pause", "type": "delay", "duration": "2h"},
				{"id": "wait", "type": "wait_for_event", "event": "order.placed", "timeout": "1d"}
			]`)

			h.completed()
			require.NoError(t, queryErr)
			require.True(t, tc.want.Since.Equal(got.Since), "since %s, want %s", got.Since, tc.want.Since)
			got.Since = tc.want.Since
			require.Equal(t, tc.want, got)
		})
	}
}

func TestEnrollmentEveryStepType(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.env.OnActivity(a.SendEmail, mock.Anything, mock.Anything).Return(activities.EmailResult{MessageID: "<m@x>"}, nil)
	h.env.OnActivity(a.SendWebhook, mock.Anything, mock.Anything).Return(activities.WebhookResult{Status: 200}, nil)
	h.env.OnActivity(a.EvaluateCondition, mock.Anything, mock.Anything).Return(activities.ConditionResult{Value: true}, nil)
	h.mockWait(&event.Event{ID: evID("ev-1")}, nil)

	h.run(`[
		{"id": "welcome", "type": "send_email", "to": "contact.email", "subject": "'Hi'", "text": "'Hello'"},
		{"id": "check", "type": "branch", "condition": "true",
		 "yes": [{"id": "wait", "type": "wait_for_event", "event": "order.placed", "timeout": "1h",
		          "yes": [{"id": "hook", "type": "webhook", "url": "https://crm.example/hooks"}]}]}
	]`)

	h.completed()
	require.Equal(t, []string{"welcome done", "check yes", "wait yes", "hook done"},
		h.outcomes(map[string]string{"welcome": "send_email", "check": "branch", "wait": "wait_for_event", "hook": "webhook"}))
	emails := inputs[activities.EmailInput](h, "SendEmail")
	require.Len(t, emails, 1)
	require.Equal(t, "contact.email", emails[0].Step.To)
}

func TestEnrollmentBookkeepingFailsForGood(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"permanent", temporal.NewNonRetryableApplicationError("enrollment e no longer exists", activities.ErrTypeNotFound, nil)},
		{"retried past the limit", errors.New("connect: connection refused")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarnessWith(t, workflows.Config{BookkeepingLimit: time.Minute})
			var attempts int
			h.env.OnActivity(a.RegisterWait, mock.Anything, mock.Anything).Return(
				func(context.Context, activities.WaitInput) (activities.WaitResult, error) {
					attempts++
					return activities.WaitResult{}, tc.err
				})
			h.env.OnActivity(a.EmitEvent, mock.Anything, mock.Anything).Return(activities.EmitEventResult{}, nil)

			h.run(waitSteps)

			require.Error(t, h.env.GetWorkflowError())
			fin := h.finished()
			require.Equal(t, "failed", fin.Status)
			require.Equal(t, []string{"wait failed"}, h.outcomes(nil))
			detail := h.line("wait", "failed").detail(t)
			require.Equal(t, "RegisterWait", detail["activity"])
			require.Equal(t, fin.Reason, detail["error"])
			if tc.name == "permanent" {
				require.Equal(t, 1, attempts)
				require.Contains(t, fin.Reason, tc.err.Error())
			} else {
				// Retried with backoff from 200ms (0.2 + 0.4 + ... + 25.6s),
				// then given up within the limit. (The test environment
				// reports the last attempt as a timeout; a real worker
				// reports its error, see e2e.)
				require.Equal(t, 9, attempts)
				require.Equal(t, 51*time.Second, h.elapsed())
			}
			h.env.AssertActivityNumberOfCalls(t, "EmitEvent", 0)
		})
	}
}

package definition

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// validAutomation returns a small automation built in Go, as a test or an interpreter would.
func validAutomation() *Automation {
	hour, _ := ParseDuration("1h")
	return &Automation{
		Name:    "Built in Go",
		Trigger: Trigger{Event: "signup"},
		Steps: []Step{
			{ID: "wait", Type: TypeDelay, Delay: &DelayStep{Duration: hour}},
			{ID: "check", Type: TypeBranch, Branch: &BranchStep{
				Condition: "contact.properties.plan == 'pro'",
				Yes:       []Step{{ID: "hook", Type: TypeWebhook, Webhook: &WebhookStep{URL: "https://example.com"}}},
			}},
		},
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(a *Automation)
		want   []Problem
	}{
		{
			name:   "valid",
			modify: func(*Automation) {},
		},
		{
			name:   "type without its settings",
			modify: func(a *Automation) { a.Steps[0].Delay = nil },
			want:   []Problem{{"/steps/0", "a delay step must set exactly its own delay settings"}},
		},
		{
			name: "two settings at once",
			modify: func(a *Automation) {
				a.Steps[0].EmitEvent = &EmitEventStep{Name: "x"}
			},
			want: []Problem{{"/steps/0", "a delay step must set exactly its own delay settings"}},
		},
		{
			name:   "unknown type",
			modify: func(a *Automation) { a.Steps[0].Type = "nap" },
			want:   []Problem{{"/steps/0/type", `unknown step type "nap"; use one of delay, wait_for_event, branch, webhook, send_email, update_contact, emit_event`}},
		},
		{
			name: "negative and too long durations",
			modify: func(a *Automation) {
				a.Steps[0].Delay.Duration = NewDuration(-time.Hour)
				a.Steps = append(a.Steps, Step{ID: "w", Type: TypeWaitForEvent, WaitForEvent: &WaitStep{
					Event: "e", Timeout: NewDuration(400 * 24 * time.Hour),
				}})
			},
			want: []Problem{
				{"/steps/0/duration", "must be greater than zero"},
				{"/steps/2/timeout", "9600h0m0s is longer than the maximum of 365d"},
			},
		},
		{
			name: "too deep when built in Go",
			modify: func(a *Automation) {
				leaf := Step{ID: "leaf", Type: TypeDelay, Delay: a.Steps[0].Delay}
				for i := range MaxDepth {
					leaf = Step{ID: "b" + string(rune('a'+i)), Type: TypeBranch, Branch: &BranchStep{Condition: "true", No: []Step{leaf}}}
				}
				a.Steps = append(a.Steps, leaf)
			},
			want: []Problem{{"/steps/2/no/0/no/0/no/0/no/0/no/0/no/0/no/0/no/0/no/0/no/0", depthDetail}},
		},
		{
			name: "name too long",
			modify: func(a *Automation) {
				a.Name = strings.Repeat("é", MaxNameLength+1) // counted in characters, not bytes
			},
			want: []Problem{{"/name", "is 201 characters long; at most 200 are allowed"}},
		},
		{
			name: "too many exit events and map entries",
			modify: func(a *Automation) {
				body := ExprMap{}
				for i := range MaxExitEvents + 1 {
					a.ExitOn = append(a.ExitOn, "e"+time.Duration(i).String())
				}
				for i := range MaxMapEntries + 1 {
					body["k"+time.Duration(i).String()] = "1"
				}
				a.Steps[1].Branch.Yes[0].Webhook.Body = body
			},
			want: []Problem{
				{"/exit_on", "lists 51 events; at most 50 are allowed"},
				{"/steps/1/yes/0/body", "has 101 entries; at most 100 are allowed"},
			},
		},
		{
			name: "emitting the trigger is fine once",
			modify: func(a *Automation) {
				a.Trigger.Frequency = FrequencyOnce
				a.Steps = append(a.Steps, Step{ID: "emit", Type: TypeEmitEvent, EmitEvent: &EmitEventStep{Name: "signup"}})
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := validAutomation()
			tt.modify(a)
			require.Equal(t, tt.want, Validate(a, fakeChecker{}))
		})
	}
}

func TestValidateNil(t *testing.T) {
	t.Parallel()
	require.Equal(t, []Problem{{"", "definition is missing"}}, Validate(nil, nil))
}

// recordingChecker remembers what it was asked, to show which scope each expression gets.
type recordingChecker struct {
	conditions, values map[string]Scope
}

func (r *recordingChecker) CheckCondition(expr string, scope Scope) error {
	r.conditions[expr] = scope
	return nil
}

func (r *recordingChecker) CheckValue(expr string, scope Scope) error {
	r.values[expr] = scope
	if expr == "boom" {
		return errors.New("boom")
	}
	return nil
}

func TestValidateChecksEveryExpressionInItsScope(t *testing.T) {
	t.Parallel()
	a := loadExample(t)
	r := &recordingChecker{conditions: map[string]Scope{}, values: map[string]Scope{}}
	require.Empty(t, Validate(a, r))
	require.Equal(t, map[string]Scope{
		"event.properties.amount >= 50.0":                        ScopeTrigger,
		"event.properties.orderId == trigger.properties.orderId": ScopeWait,
		"contact.properties.plan == 'pro'":                       ScopeStep,
	}, r.conditions)
	require.Len(t, r.values, 5) // distinct texts; contact.email and the order id appear twice
	for _, scope := range r.values {
		require.Equal(t, ScopeStep, scope)
	}

	a.Steps[0].Webhook.Body["email"] = "boom"
	require.Equal(t, []Problem{{"/steps/0/body/email", "boom"}}, Validate(a, r))

	// Without a checker only the structure is validated.
	a.Steps[0].Webhook.Body["email"] = "hello"
	require.Empty(t, Validate(a, nil))
}

func TestScopeString(t *testing.T) {
	t.Parallel()
	require.Equal(t, "trigger condition", ScopeTrigger.String())
	require.Equal(t, "wait condition", ScopeWait.String())
	require.Equal(t, "step", ScopeStep.String())
	require.Equal(t, "Scope(9)", Scope(9).String())
}

func TestStepMarshalRejectsInconsistentUnion(t *testing.T) {
	t.Parallel()
	_, err := json.Marshal(Step{ID: "x", Type: TypeDelay})
	require.ErrorContains(t, err, "a delay step must set exactly its own delay settings")
	_, err = json.Marshal(Step{ID: "x", Type: "nap"})
	require.ErrorContains(t, err, `unknown step type "nap"`)

	out, err := json.Marshal(Step{ID: "x", Type: TypeEmitEvent, EmitEvent: &EmitEventStep{}})
	require.NoError(t, err)
	require.JSONEq(t, `{"id": "x", "type": "emit_event", "name": ""}`, string(out))
}

func TestCheckEventName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", MaxEventNameLength+1)
	tests := []struct {
		name    string
		wantErr string
	}{
		{name: "purchase.completed"},
		{name: "a"},
		{name: "Billing/invoice-paid_v2"},
		{name: long[:MaxEventNameLength]},
		{name: "", wantErr: "must not be empty"},
		{name: long, wantErr: "256 characters long"},
		{name: "9lives", wantErr: "must start with a letter"},
		{name: "_x", wantErr: "must start with a letter"},
		{name: "a b", wantErr: "may contain only"},
		{name: "café", wantErr: "may contain only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := CheckEventName(tt.name)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestUnknownFieldDetail(t *testing.T) {
	t.Parallel()
	fields := fieldSet{"duration": nil, "id": nil, "type": nil}
	tests := []struct {
		field, want string
	}{
		{"durration", `unknown field "durration"; did you mean "duration"?`},
		{"Duration", `unknown field "Duration"; did you mean "duration"?`},
		{"tpye", `unknown field "tpye"; did you mean "type"?`},
		{"ix", `unknown field "ix"; did you mean "id"?`},
		{"foo", `unknown field "foo"; allowed fields are duration, id, type`},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, unknownFieldDetail(tt.field, fields))
		})
	}
}

func TestValidateWebhook(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		url     string
		headers Headers
		body    ExprMap
		want    []Problem
	}{
		{name: "valid", url: "https://hooks.example.com/x?y=1", headers: Headers{"Authorization": "Bearer t\tx"}},
		{name: "no host", url: "https:///path", want: []Problem{{"/steps/0/url", "has no host"}}},
		{name: "unparsable", url: "http://[::1", want: []Problem{{"/steps/0/url", "is not a valid URL"}}},
		{
			name: "too long",
			url:  "https://example.com/" + strings.Repeat("a", maxURLLength),
			want: []Problem{{"/steps/0/url", "is 2068 bytes long; at most 2048 are allowed"}},
		},
		{
			name:    "header problems",
			url:     "https://example.com",
			headers: Headers{"": "x", "Host": "evil", "X-Long": strings.Repeat("v", maxHeaderValueLength+1), "X-Del": "a\x7f"},
			want: []Problem{
				{"/steps/0/headers/", "header name must not be empty"},
				{"/steps/0/headers/Host", `header "Host" is set by Signalbox and cannot be overridden`},
				{"/steps/0/headers/X-Del", "header value must not contain control characters"},
				{"/steps/0/headers/X-Long", "header value is 4097 bytes long; at most 4096 are allowed"},
			},
		},
		{
			name: "body keys",
			url:  "https://example.com",
			body: ExprMap{strings.Repeat("k", maxKeyLength+1): "1", "a/b": "2"},
			want: []Problem{{"/steps/0/body/" + strings.Repeat("k", maxKeyLength+1), "name is 256 characters long; at most 255 are allowed"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := &Automation{
				Name:    "Hooks",
				Trigger: Trigger{Event: "a"},
				Steps:   []Step{{ID: "h", Type: TypeWebhook, Webhook: &WebhookStep{URL: tt.url, Headers: tt.headers, Body: tt.body}}},
			}
			require.Equal(t, tt.want, Validate(a, nil))
		})
	}
}

package definition

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func loadExample(t *testing.T) *Automation {
	t.Helper()
	data, err := os.ReadFile("testdata/valid/post_purchase.json")
	require.NoError(t, err)
	a, problems := Load(data, fakeChecker{})
	require.Empty(t, problems)
	return a
}

func TestAllSteps(t *testing.T) {
	t.Parallel()
	a := loadExample(t)
	var got []string
	for ptr, s := range a.AllSteps() {
		got = append(got, ptr+" "+s.ID)
	}
	require.Equal(t, []string{
		"/steps/0 thanks",
		"/steps/1 pause",
		"/steps/2 review",
		"/steps/2/yes/0 tag",
		"/steps/2/no/0 nudge",
		"/steps/3 vip",
		"/steps/3/yes/0 done",
	}, got)

	// Breaking out of the loop stops the walk, nested lists included.
	var first []string
	for _, s := range a.AllSteps() {
		first = append(first, s.ID)
		if s.ID == "tag" {
			break
		}
	}
	require.Equal(t, []string{"thanks", "pause", "review", "tag"}, first)
}

func TestFindStepAndNext(t *testing.T) {
	t.Parallel()
	a := loadExample(t)
	require.Nil(t, a.FindStep("nope"))
	require.Equal(t, TypeSendEmail, a.FindStep("nudge").Type)
	require.Same(t, &a.Steps[2].WaitForEvent.No[0], a.FindStep("nudge"))

	tests := []struct {
		id        string
		wantNext  string // "" when the automation ends
		wantFound bool
	}{
		{id: "thanks", wantNext: "pause", wantFound: true},
		{id: "review", wantNext: "vip", wantFound: true},
		{id: "tag", wantNext: "vip", wantFound: true},
		{id: "nudge", wantNext: "vip", wantFound: true},
		{id: "vip", wantFound: true},
		{id: "done", wantFound: true},
		{id: "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			t.Parallel()
			next, found := a.Next(tt.id)
			require.Equal(t, tt.wantFound, found)
			if tt.wantNext == "" {
				require.Nil(t, next)
				return
			}
			require.Equal(t, tt.wantNext, next.ID)
		})
	}
}

func TestExpressions(t *testing.T) {
	t.Parallel()
	a := loadExample(t)
	var got []Expression
	for e := range a.Expressions() {
		got = append(got, e)
	}
	require.Equal(t, []Expression{
		{"/trigger/condition", "event.properties.amount >= 50.0", ScopeTrigger, true},
		{"/steps/0/body/email", "contact.email", ScopeStep, false},
		{"/steps/0/body/order", "trigger.properties.orderId", ScopeStep, false},
		{"/steps/2/condition", "event.properties.orderId == trigger.properties.orderId", ScopeWait, true},
		{"/steps/2/yes/0/properties/reviewer", "true", ScopeStep, false},
		{"/steps/2/no/0/to", "contact.email", ScopeStep, false},
		{"/steps/2/no/0/subject", "'How was your order?'", ScopeStep, false},
		{"/steps/2/no/0/text", "'Tell us what you think.'", ScopeStep, false},
		{"/steps/3/condition", "contact.properties.plan == 'pro'", ScopeStep, true},
		{"/steps/3/yes/0/properties/order", "trigger.properties.orderId", ScopeStep, false},
	}, got)

	n := 0
	for range a.Expressions() {
		n++
		if n == 3 {
			break
		}
	}
	require.Equal(t, 3, n)
}

func TestTriggerOnce(t *testing.T) {
	t.Parallel()
	require.True(t, Trigger{Frequency: FrequencyOnce}.Once())
	require.False(t, Trigger{Frequency: FrequencyEvery}.Once())
	require.False(t, Trigger{}.Once(), "empty frequency means every")
}

func TestKeysAreSorted(t *testing.T) {
	t.Parallel()
	m := ExprMap{"b": "1", "a": "2", "c": "3", "A": "4"}
	require.Equal(t, []string{"A", "a", "b", "c"}, m.Keys())
	h := Headers{"X-B": "1", "X-A": "2"}
	require.Equal(t, []string{"X-A", "X-B"}, h.Keys())
	require.Empty(t, ExprMap(nil).Keys())
}

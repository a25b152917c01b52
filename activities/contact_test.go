package activities

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/store"
)

// contactActs is the activities that act on the fixture's contact.
func (f fixture) contactActs() *Activities {
	return &Activities{Store: f.st, Env: f.env}
}

// properties reads the fixture contact's properties.
func (f fixture) properties(t *testing.T) map[string]any {
	t.Helper()
	c, err := f.st.GetContact(context.Background(), f.scope.WorkspaceID, f.scope.ContactID)
	require.NoError(t, err)
	var props map[string]any
	require.NoError(t, json.Unmarshal(c.Properties, &props))
	return props
}

func visitsStep() definition.UpdateContactStep {
	return definition.UpdateContactStep{Properties: definition.ExprMap{
		"visits": "contact.properties.?visits.orValue(0.0) + 1.0"}}
}

// TestUpdateContactOncePerStep runs one update_contact step again, as a
// retry whose first result was lost does, and concurrently: the counter
// goes up by one, and every run answers the first one's result.
func TestUpdateContactOncePerStep(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.contactActs()
	in := UpdateContactInput{Scope: f.scope, StepID: "count", Step: visitsStep()}

	first, err := run(t, a.UpdateContact, in)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"visits": 1.0}, first.Properties)
	var wg sync.WaitGroup
	results := make([]UpdateContactResult, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := a.UpdateContact(context.Background(), in)
			require.NoError(t, err)
			results[i] = res
		}()
	}
	wg.Wait()
	for _, res := range results {
		require.Equal(t, first, res)
	}
	require.Equal(t, 1.0, f.properties(t)["visits"])

	// Another step, or another enrollment, counts again.
	_, err = run(t, a.UpdateContact, UpdateContactInput{Scope: f.scope, StepID: "count_again", Step: visitsStep()})
	require.NoError(t, err)
	other := f.scope
	other.WorkflowID += "-other"
	_, err = run(t, a.UpdateContact, UpdateContactInput{Scope: other, StepID: "count", Step: visitsStep()})
	require.NoError(t, err)
	require.Equal(t, 3.0, f.properties(t)["visits"])
}

// TestUpdateContactConcurrentSteps counts from many enrollments at once:
// each step reads the value it increments under the contact's lock, so no
// increment is lost.
func TestUpdateContactConcurrentSteps(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.contactActs()
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := f.scope
			s.WorkflowID += "-" + string(rune('a'+i))
			_, err := a.UpdateContact(context.Background(), UpdateContactInput{Scope: s, StepID: "count", Step: visitsStep()})
			require.NoError(t, err)
		}()
	}
	wg.Wait()
	require.Equal(t, 10.0, f.properties(t)["visits"])
}

// TestStepOutputPassesIngestChecks renders values that ingest would refuse:
// each fails its step for good with the reason, and nothing is written.
func TestStepOutputPassesIngestChecks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// A trigger property of 20,000 characters: twice it is over the cap.
	f.scope.Trigger.Properties = json.RawMessage(`{"s":"` + strings.Repeat("x", 20000) + `"}`)
	a := f.contactActs()
	deep := "{'a': " + strings.Repeat("{'a': ", 11) + "1" + strings.Repeat("}", 12)
	for _, tc := range []struct {
		name string
		step definition.UpdateContactStep
		want string
	}{
		{"too large", definition.UpdateContactStep{Properties: definition.ExprMap{"blob": "trigger.properties.s + trigger.properties.s"}},
			"at most 32768 bytes"},
		{"too deep", definition.UpdateContactStep{Properties: definition.ExprMap{"nest": deep}}, "levels deep"},
		{"NUL in a name", definition.UpdateContactStep{FirstName: `"A\u0000da"`}, "\\u0000"},
		{"name too long", definition.UpdateContactStep{LastName: "trigger.properties.s"}, "last_name"},
	} {
		t.Run("update_contact "+tc.name, func(t *testing.T) {
			_, err := run(t, a.UpdateContact, UpdateContactInput{Scope: f.scope, StepID: "bad", Step: tc.step})
			requirePermanent(t, err, ErrTypeInvalid)
			require.ErrorContains(t, err, tc.want)
		})
	}
	require.Empty(t, f.properties(t), "nothing was written")
	c, err := f.st.GetContact(context.Background(), f.contact.WorkspaceID, f.contact.ID)
	require.NoError(t, err)
	require.Equal(t, "Ada", *c.FirstName)

	for _, tc := range []struct {
		name  string
		props definition.ExprMap
		want  string
	}{
		{"too large", definition.ExprMap{"blob": "trigger.properties.s + trigger.properties.s"}, "at most 32768 bytes"},
		{"too deep", definition.ExprMap{"nest": deep}, "levels deep"},
		{"NUL", definition.ExprMap{"text": `"a\u0000b"`}, "\\u0000"},
	} {
		t.Run("emit_event "+tc.name, func(t *testing.T) {
			acts := &Activities{Store: f.st, Env: f.env, Recorder: refuseRecorder{t}}
			_, err := run(t, acts.EmitEvent, EmitEventInput{Scope: f.scope, StepID: "emit",
				Step: definition.EmitEventStep{Name: "followup.sent", Properties: tc.props}})
			requirePermanent(t, err, ErrTypeInvalid)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// refuseRecorder fails the test if anything is recorded.
type refuseRecorder struct{ t *testing.T }

func (r refuseRecorder) Record(context.Context, *store.RecordRequest) (store.RecordOutcome, error) {
	r.t.Error("an event that fails ingest's checks was recorded")
	return store.RecordOutcome{}, nil
}

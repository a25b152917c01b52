package definition

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite testdata/invalid/*.want from the current output")

// fakeChecker stands in for package conditions, which this package must not import: a bare word
// "hello" is an undeclared variable, and a quoted literal is not a condition.
type fakeChecker struct{}

func (fakeChecker) CheckCondition(expr string, scope Scope) error {
	if strings.HasPrefix(expr, "'") {
		return errors.New("condition must evaluate to bool, not string")
	}
	return fakeChecker{}.CheckValue(expr, scope)
}

func (fakeChecker) CheckValue(expr string, scope Scope) error {
	if expr == "hello" {
		return errors.New("undeclared reference to 'hello' in " + scope.String())
	}
	return nil
}

// TestLoadInvalid loads each testdata/invalid/*.json and compares the problems, one
// "pointer: detail" line each, with the sibling .want file. Run with -update to rewrite them.
func TestLoadInvalid(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/invalid/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".json"), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(file)
			require.NoError(t, err)
			a, problems := Load(data, fakeChecker{})
			require.Nil(t, a)
			require.NotEmpty(t, problems)
			var got strings.Builder
			for _, p := range problems {
				got.WriteString(p.Pointer + ": " + p.Detail + "\n")
			}
			wantFile := strings.TrimSuffix(file, ".json") + ".want"
			if *update {
				require.NoError(t, os.WriteFile(wantFile, []byte(got.String()), 0o644))
			}
			want, err := os.ReadFile(wantFile)
			require.NoError(t, err)
			require.Equal(t, string(want), got.String())
		})
	}
}

// TestValidRoundTrip checks that every valid example loads cleanly and survives
// parse → marshal → parse unchanged.
func TestValidRoundTrip(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/valid/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".json"), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(file)
			require.NoError(t, err)
			a, problems := Load(data, fakeChecker{})
			require.Empty(t, problems)
			require.NotNil(t, a)

			out, err := json.Marshal(a)
			require.NoError(t, err)
			again, problems := Parse(out)
			require.Empty(t, problems)
			require.Equal(t, a, again)

			var viaStd Automation
			require.NoError(t, json.Unmarshal(out, &viaStd))
			require.Equal(t, a, &viaStd)

			// The original text of every duration and every expression survives.
			for _, s := range a.AllSteps() {
				if s.Delay != nil {
					require.Contains(t, string(data), `"`+s.Delay.Duration.String()+`"`)
				}
			}
		})
	}
}

func TestParseKeepsPartialAutomation(t *testing.T) {
	t.Parallel()
	a, problems := Parse([]byte(`{"name": "x", "trigger": {"event": "a"}, "steps": [{"id": "d", "type": "delay", "duration": 5}], "extra": 1}`))
	require.NotNil(t, a)
	require.Equal(t, "x", a.Name)
	require.Equal(t, "a", a.Trigger.Event)
	require.Len(t, a.Steps, 1)
	require.NotNil(t, a.Steps[0].Delay)
	require.Equal(t, []Problem{
		{Pointer: "/extra", Detail: `unknown field "extra"; allowed fields are exit_on, limits, name, steps, trigger`},
		{Pointer: "/steps/0/duration", Detail: "must be a string, not a number"},
	}, problems)
}

func TestParseRejectsOversizedDocument(t *testing.T) {
	t.Parallel()
	data := []byte(`{"name": "` + strings.Repeat("x", MaxDocumentSize) + `"}`)
	a, problems := Parse(data)
	require.Nil(t, a)
	require.Len(t, problems, 1)
	require.Empty(t, problems[0].Pointer)
	require.Contains(t, problems[0].Detail, "at most 262144")
}

func TestUnmarshalJSONIsStrict(t *testing.T) {
	t.Parallel()
	var a Automation
	err := json.Unmarshal([]byte(`{"name": "x", "trigger": {"event": "a"}, "steps": [{"id": "d", "type": "delay", "durration": "1h"}]}`), &a)
	var parseErr *ParseError
	require.ErrorAs(t, err, &parseErr)
	require.Equal(t, "/steps/0/durration", parseErr.Problems[0].Pointer)
	require.Contains(t, err.Error(), `/steps/0/durration: unknown field "durration"; did you mean "duration"?`)

	var s Step
	require.NoError(t, json.Unmarshal([]byte(`{"id": "d", "type": "delay", "duration": "2h"}`), &s))
	require.Equal(t, "2h", s.Delay.Duration.String())
	err = json.Unmarshal([]byte(`{"id": "d", "type": "nap"}`), &s)
	require.ErrorAs(t, err, &parseErr)
	require.Equal(t, "/type", parseErr.Problems[0].Pointer)
}

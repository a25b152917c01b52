package definition

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPointerEscaping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		got  pointer
		want string
	}{
		{"plain", pointer("").key("steps").index(3).key("body"), "/steps/3/body"},
		{"slash", pointer("/body").key("a/b"), "/body/a~1b"},
		{"tilde", pointer("/body").key("t~ilde"), "/body/t~0ilde"},
		{"tilde then slash", pointer("/body").key("~/"), "/body/~0~1"},
		{"empty key", pointer("/body").key(""), "/body/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, string(tt.got))
		})
	}
}

func TestSortProblems(t *testing.T) {
	t.Parallel()
	got := sortProblems([]Problem{
		{"/steps/10/id", "b"},
		{"/steps/2/id", "a"},
		{"/steps/2", "z"},
		{"/name", "x"},
		{"/steps/2/id", "a"},
		{"", "root"},
		{"/steps/2/id", "0"},
		{"/steps/2/yes", "y"},
	})
	require.Equal(t, []Problem{
		{"", "root"},
		{"/name", "x"},
		{"/steps/2", "z"},
		{"/steps/2/id", "0"},
		{"/steps/2/id", "a"},
		{"/steps/2/yes", "y"},
		{"/steps/10/id", "b"},
	}, got)
}

func TestWithin(t *testing.T) {
	t.Parallel()
	require.True(t, within("/steps/1/id", "/steps/1"))
	require.True(t, within("/steps/1", "/steps/1"))
	require.True(t, within("/anything", ""))
	require.False(t, within("/steps/10", "/steps/1"))
}

func TestProblemString(t *testing.T) {
	t.Parallel()
	require.Equal(t, "/name: is required", Problem{"/name", "is required"}.String())
	require.Equal(t, "invalid JSON", Problem{"", "invalid JSON"}.String())
	err := &ParseError{Problems: []Problem{{"/a", "x"}, {"/b", "y"}}}
	require.Equal(t, "invalid automation definition: /a: x; /b: y", err.Error())
}

package conditions_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/definition"
)

func TestInSegment(t *testing.T) {
	t.Parallel()
	env, err := conditions.NewEnv(conditions.Config{})
	require.NoError(t, err)
	p, err := env.Compile(`in_segment("s1") && !in_segment('s2') || in_segment("s1")`, conditions.KindCondition)
	require.NoError(t, err)
	require.Equal(t, []string{"s1", "s2"}, p.Segments())
	for _, tc := range []struct {
		in   []string
		want bool
	}{{nil, false}, {[]string{"s1"}, true}, {[]string{"s1", "s2"}, true}, {[]string{"s2"}, false}} {
		got, err := p.EvalBool(context.Background(), conditions.Vars{Now: time.Now(), Segments: tc.in})
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "%v", tc.in)
	}
	_, err = env.Compile(`in_segment(event.properties.seg)`, conditions.KindCondition)
	require.ErrorContains(t, err, "string literal")

	require.NoError(t, env.CheckCondition(`in_segment("s1")`, definition.ScopeStep))
	require.NoError(t, env.CheckCondition(`in_segment("s1")`, definition.ScopeWait))
	err = env.CheckCondition(`in_segment("s1")`, definition.ScopeTrigger)
	require.ErrorIs(t, err, conditions.ErrInvalid)
	require.ErrorContains(t, err, "use it in a step condition (branch or wait_for_event)")
	require.ErrorContains(t, env.CheckValue(`in_segment("s1")`, definition.ScopeStep), "cannot be used in a value")
	require.NoError(t, env.CheckCondition(`event.properties.x == 1`, definition.ScopeTrigger))
}

func TestSegmentWhere(t *testing.T) {
	t.Parallel()
	env, err := conditions.NewEnv(conditions.Config{})
	require.NoError(t, err)
	x, err := env.SegmentWhere(`event.properties.plan == "pro" && (10 < event.properties.total || !has(event.properties.coupon))`)
	require.NoError(t, err)
	require.Len(t, x.And, 2)
	require.Equal(t, []string{"plan"}, x.And[0].Path)
	require.Equal(t, ">", x.And[1].Or[0].Op, "a literal on the left flips the comparison")
	require.Equal(t, "has", x.And[1].Or[1].Not.Op)
	x, err = env.SegmentWhere(`event.properties["a b"].c in ["x", 2]`)
	require.NoError(t, err)
	require.Equal(t, []string{"a b", "c"}, x.Path)
	require.Equal(t, []any{"x", 2.0}, x.Value)
	for _, bad := range []string{`event.properties.a + 1 > 2`, `contact.properties.plan == "pro"`, `event.properties.a == event.properties.b`,
		`event.properties.a > true`, `event.properties.a in event.properties.b`, `size(event.properties) > 1`, `event.properties.a ==`} {
		_, err := env.SegmentWhere(bad)
		require.ErrorIs(t, err, conditions.ErrInvalid, bad)
	}
}

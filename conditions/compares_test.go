package conditions

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestComparisons(t *testing.T) {
	t.Parallel()
	env, err := NewEnv(Config{})
	require.NoError(t, err)
	cases := []struct {
		expr string
		want []Comparison
	}{
		{"event.properties.amount >= 50.0", []Comparison{{[]string{"event", "properties", "amount"}, "number"}}},
		{"'EUR' == trigger.properties.currency", []Comparison{{[]string{"trigger", "properties", "currency"}, "string"}}},
		{"event.properties.plan in ['a', 'b']", []Comparison{{[]string{"event", "properties", "plan"}, "string"}}},
		{"event.properties.ok != true && contact.email == null", []Comparison{
			{[]string{"event", "properties", "ok"}, "boolean"}, {[]string{"contact", "email"}, "null"}}},
		{"event.properties.a == event.properties.b", nil},
		{"size(event.properties.items) > 2", nil},
	}
	for _, c := range cases {
		p, err := env.Compile(c.expr, KindCondition)
		require.NoError(t, err, c.expr)
		require.ElementsMatch(t, c.want, p.Comparisons(), c.expr)
	}
}

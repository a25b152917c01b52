package conditions

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/definition"
)

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	tests := []struct {
		name       string
		expr       string
		kind       Kind
		wantErr    error
		wantDetail string
	}{
		{name: "syntax", expr: "event.properties.amount >=", kind: KindCondition, wantErr: ErrInvalid, wantDetail: "1:27: Syntax error"},
		{name: "unbalanced quote", expr: "'How was your order?", kind: KindValue, wantErr: ErrInvalid, wantDetail: "Syntax error"},
		{name: "string condition", expr: "'not a bool'", kind: KindCondition, wantErr: ErrInvalid, wantDetail: "a condition must evaluate to a bool, not string"},
		{name: "int condition", expr: "1 + 1", kind: KindCondition, wantErr: ErrInvalid, wantDetail: "not int"},
		{name: "bare word value", expr: "hello", kind: KindValue, wantErr: ErrInvalid, wantDetail: "1:1: undeclared reference to 'hello'"},
		{name: "undeclared variable", expr: "order.total > 5", kind: KindCondition, wantErr: ErrInvalid, wantDetail: "undeclared reference to 'order'"},
		{name: "unknown function", expr: "contact.email.shout()", kind: KindValue, wantErr: ErrInvalid, wantDetail: "undeclared reference to 'shout'"},
		{name: "wrong argument type", expr: "now > 5", kind: KindCondition, wantErr: ErrInvalid, wantDetail: "no matching overload"},
		{name: "empty", expr: "  ", kind: KindValue, wantErr: ErrInvalid, wantDetail: "the expression is empty"},
		{name: "bad constant regex", expr: "contact.email.matches('(')", kind: KindCondition, wantErr: ErrInvalid, wantDetail: "missing closing )"},
		{
			name:       "too long",
			expr:       "'" + strings.Repeat("é", DefaultMaxExpressionLength) + "'",
			kind:       KindValue,
			wantErr:    ErrInvalid,
			wantDetail: "expression code point size exceeds limit",
		},
		{
			name:       "too deeply nested",
			expr:       strings.Repeat("[", 40) + strings.Repeat("]", 40),
			kind:       KindValue,
			wantErr:    ErrInvalid,
			wantDetail: "expression recursion limit exceeded: 32",
		},
		{
			name:       "nested comprehension over properties",
			expr:       "event.properties.items.all(x, event.properties.items.exists(y, x == y))",
			kind:       KindCondition,
			wantErr:    ErrTooExpensive,
			wantDetail: "its worst case costs up to 160603 units, over the budget of 10000",
		},
		{
			name:       "nested literal blow-up",
			expr:       "lists.range(1000).map(x, lists.range(1000).map(y, x * y)).size() > 0",
			kind:       KindCondition,
			wantErr:    ErrTooExpensive,
			wantDetail: "over the budget",
		},
		{
			name:       "range of a computed size",
			expr:       "lists.range(int(event.properties.n)).size() > 0",
			kind:       KindCondition,
			wantErr:    ErrTooExpensive,
			wantDetail: "over the budget",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := env.Compile(tt.expr, tt.kind)
			require.Nil(t, p)
			require.ErrorIs(t, err, tt.wantErr)
			require.Contains(t, err.Error(), tt.wantDetail)
			require.NotContains(t, err.Error(), "\n", "details must fit on one line")
		})
	}
}

func TestCompileAcceptsEverydayExpressions(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	for _, expr := range []string{
		"event.properties.amount >= 50.0",
		"event.properties.exists(k, k.startsWith('utm_'))",
		"event.properties.items.filter(i, i.price > 10).size() > 0",
		"event.properties.items.map(i, i.sku).join(',') != ''",
		"contact.email.lowerAscii().endsWith('@example.com') && contact.properties.plan in ['pro', 'team']",
		"now - timestamp(trigger.properties.signed_up_at) > duration('72h')",
		"[1, 2, 3].map(x, [1, 2, 3].map(y, x * y)).size() == 3",
		"{'order': trigger.properties.orderId, 'items': trigger.properties.items.map(i, i.sku)}",
	} {
		_, err := env.Compile(expr, KindValue)
		require.NoError(t, err, expr)
	}
}

func TestCompileUnknownKind(t *testing.T) {
	t.Parallel()
	_, err := newTestEnv(t).Compile("true", Kind(0))
	require.ErrorContains(t, err, "unknown kind Kind(0)")
	require.Equal(t, "condition", KindCondition.String())
	require.Equal(t, "value", KindValue.String())
}

func TestEvaluationStopsAtCostLimit(t *testing.T) {
	t.Parallel()
	// A budget that lets anything compile, so that only the runtime limit stands in the way.
	env, err := NewEnv(Config{CostBudget: math.MaxUint64, CostLimit: 10_000, Timeout: -1})
	require.NoError(t, err)
	p, err := env.Compile("lists.range(1000).map(x, lists.range(1000).map(y, x * y)).size() > 0", KindCondition)
	require.NoError(t, err)
	start := time.Now()
	ok, err := p.EvalBool(context.Background(), Vars{})
	require.False(t, ok)
	require.ErrorIs(t, err, ErrCostLimit)
	require.Less(t, time.Since(start), time.Second, "a million iterations must not run to the end")
}

func TestCostLimitCatchesInputsOverTheHints(t *testing.T) {
	t.Parallel()
	// The expression is within budget for the 100 items the estimate assumes, but the data has
	// 2,000; the limit is lowered from the default so that it, not the deadline, stops the run.
	env, err := NewEnv(Config{CostLimit: 1_000, Timeout: -1})
	require.NoError(t, err)
	p, err := env.Compile("event.properties.items.exists(i, i == -1)", KindCondition)
	require.NoError(t, err)
	require.LessOrEqual(t, p.EstimatedCost(), uint64(1_000))
	items := make([]any, 2_000)
	for i := range items {
		items[i] = float64(i)
	}
	ok, err := p.EvalBool(context.Background(), Vars{Event: map[string]any{"properties": map[string]any{"items": items}}})
	require.False(t, ok)
	require.ErrorIs(t, err, ErrCostLimit)
}

func TestEvaluationStopsAtDeadline(t *testing.T) {
	t.Parallel()
	env, err := NewEnv(Config{CostBudget: math.MaxUint64, CostLimit: math.MaxUint64, Timeout: time.Millisecond})
	require.NoError(t, err)
	p, err := env.Compile("lists.range(1000).map(x, lists.range(1000).map(y, x * y)).size() > 0", KindCondition)
	require.NoError(t, err)
	start := time.Now()
	ok, err := p.EvalBool(context.Background(), Vars{})
	require.False(t, ok)
	require.ErrorIs(t, err, ErrTimeout)
	require.Less(t, time.Since(start), time.Second)
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	require.Equal(t, Config{
		CostBudget:          DefaultCostBudget,
		CostLimit:           DefaultCostLimit,
		Timeout:             DefaultTimeout,
		MaxExpressionLength: DefaultMaxExpressionLength,
		MaxRecursionDepth:   DefaultMaxRecursionDepth,
		MaxCollectionSize:   DefaultMaxCollectionSize,
		MaxStringSize:       DefaultMaxStringSize,
		CacheSize:           DefaultCacheSize,
	}, newTestEnv(t).Config())

	env, err := NewEnv(Config{CostBudget: 5, Timeout: -1})
	require.NoError(t, err)
	require.Equal(t, uint64(5), env.Config().CostBudget)
	require.Equal(t, time.Duration(-1), env.Config().Timeout)
	_, err = env.Compile("contact.email.contains('x')", KindCondition)
	require.ErrorIs(t, err, ErrTooExpensive)
}

func TestCompileCache(t *testing.T) {
	t.Parallel()
	env, err := NewEnv(Config{CacheSize: 2})
	require.NoError(t, err)
	a, err := env.Compile("true", KindCondition)
	require.NoError(t, err)
	again, err := env.Compile("true", KindCondition)
	require.NoError(t, err)
	require.Same(t, a, again)

	asValue, err := env.Compile("true", KindValue)
	require.NoError(t, err)
	require.NotSame(t, a, asValue, "the kind is part of the key")

	_, err = env.Compile("hello", KindValue)
	require.Error(t, err)
	require.Equal(t, 2, env.cache.len(), "errors are not cached")

	_, err = env.Compile("false", KindCondition) // evicts the least recently used: "true" as a condition
	require.NoError(t, err)
	require.Equal(t, 2, env.cache.len())
	fresh, err := env.Compile("true", KindCondition)
	require.NoError(t, err)
	require.NotSame(t, a, fresh)

	// put keeps the first program when two goroutines compiled the same key.
	env.cache.put(cacheKey{KindCondition, "true"}, a)
	kept, ok := env.cache.get(cacheKey{KindCondition, "true"})
	require.True(t, ok)
	require.Same(t, fresh, kept)
}

// TestLoadWithRealChecker runs the definition testdata through the real CEL checker: the valid
// examples must compile, and a bare word must be caught at its pointer.
func TestLoadWithRealChecker(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	files, err := filepath.Glob("../definition/testdata/valid/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		data, err := os.ReadFile(file)
		require.NoError(t, err)
		a, problems := definition.Load(data, env)
		require.Empty(t, problems, file)
		require.NotNil(t, a)
	}

	data, err := os.ReadFile("../definition/testdata/invalid/expressions.json")
	require.NoError(t, err)
	_, problems := definition.Load(data, env)
	require.Equal(t, []definition.Problem{
		{Pointer: "/steps/0/body/bare", Detail: "invalid expression: 1:1: undeclared reference to 'hello'"},
		{Pointer: "/steps/1/condition", Detail: "invalid expression: 1:1: undeclared reference to 'hello'"},
		{Pointer: "/steps/1/no/0/to", Detail: "invalid expression: 1:1: undeclared reference to 'hello'"},
		{Pointer: "/steps/2/properties/p", Detail: "invalid expression: 1:1: undeclared reference to 'hello'"},
		{Pointer: "/trigger/condition", Detail: "invalid expression: a condition must evaluate to a bool, not string"},
	}, problems)
}

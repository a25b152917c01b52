package conditions

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/event"
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

// TestEventBudgetSharedByConditions evaluates one event's conditions under
// one budget: each spends what it costs, and once the budget is gone the
// rest are not evaluated at all.
func TestEventBudgetSharedByConditions(t *testing.T) {
	t.Parallel()
	items := make([]any, 500)
	for i := range items {
		items[i] = float64(i)
	}
	vars := Vars{Event: map[string]any{"properties": map[string]any{"items": items}}}
	const expr = "event.properties.items.exists(i, i == -1)"
	// What one evaluation costs over these 500 items.
	probe, err := NewEnv(Config{CostLimit: 1_000_000, Timeout: -1, EventTimeout: -1})
	require.NoError(t, err)
	p, err := probe.Compile(expr, KindCondition)
	require.NoError(t, err)
	ctx, cancel := probe.EventBudget(context.Background())
	defer cancel()
	_, err = p.EvalBool(ctx, vars)
	require.NoError(t, err)
	left, ok := BudgetLeft(ctx)
	require.True(t, ok)
	cost := DefaultEventCostBudget - left
	require.Greater(t, cost, uint64(500))

	// A budget of three and a half evaluations: the fourth still starts
	// and spends the rest, the fifth does not.
	env, err := NewEnv(Config{CostLimit: 1_000_000, EventCostBudget: cost*3 + cost/2, Timeout: -1, EventTimeout: -1})
	require.NoError(t, err)
	p, err = env.Compile(expr, KindCondition)
	require.NoError(t, err)
	cheap, err := env.Compile("event.properties.items.size() == 500", KindCondition)
	require.NoError(t, err)
	ctx, cancel = env.EventBudget(context.Background())
	defer cancel()
	evaluated := 0
	for range 20 {
		_, err := p.EvalBool(ctx, vars)
		if errors.Is(err, ErrBudget) {
			break
		}
		require.NoError(t, err)
		evaluated++
	}
	require.Equal(t, 4, evaluated)
	left, _ = BudgetLeft(ctx)
	require.Zero(t, left)
	// Even a cheap condition is refused now; another event has its own budget.
	_, err = cheap.EvalBool(ctx, vars)
	require.ErrorIs(t, err, ErrBudget)
	other, cancel2 := env.EventBudget(context.Background())
	defer cancel2()
	ok, err = cheap.EvalBool(other, vars)
	require.NoError(t, err)
	require.True(t, ok)
	// Without a budget in the context, nothing is counted.
	_, ok = BudgetLeft(context.Background())
	require.False(t, ok)
}

// TestEventDeadline stops an event's conditions when its deadline passes.
func TestEventDeadline(t *testing.T) {
	t.Parallel()
	env, err := NewEnv(Config{CostBudget: math.MaxUint64, CostLimit: math.MaxUint64, Timeout: -1,
		EventTimeout: 5 * time.Millisecond})
	require.NoError(t, err)
	p, err := env.Compile("lists.range(1000).map(x, lists.range(1000).map(y, x * y)).size() > 0", KindCondition)
	require.NoError(t, err)
	ctx, cancel := env.EventBudget(context.Background())
	defer cancel()
	_, err = p.EvalBool(ctx, Vars{})
	require.ErrorIs(t, err, ErrTimeout)
	_, err = p.EvalBool(ctx, Vars{})
	require.ErrorIs(t, err, ErrTimeout, "later conditions of the event do not start")
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
		EventCostBudget:     DefaultEventCostBudget,
		EventTimeout:        DefaultEventTimeout,
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

func TestWaitCondition(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	trigger := event.Event{Name: "signed.up", Properties: json.RawMessage(`{"amount": 50}`)}
	ev := event.Event{Name: "order.placed", Properties: json.RawMessage(`{"amount": 80}`), OccurredAt: time.Now()}
	vip := ContactMap("c1", "ada@example.com", nil, nil, json.RawMessage(`{"vip": true}`))
	for _, tc := range []struct {
		name      string
		condition string
		contact   map[string]any
		want      bool
		err       bool
	}{
		{"no condition", "", nil, true, false},
		{"event above the trigger", "event.properties.amount > trigger.properties.amount", nil, true, false},
		{"event below", "event.properties.amount > 100", nil, false, false},
		{"contact", "contact.properties.vip", vip, true, false},
		{"contact not loaded", "contact.properties.vip", nil, false, true},
		{"does not compile", "event.properties.amount >", nil, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ok, err := env.WaitCondition(context.Background(), tc.condition, trigger, ev, tc.contact, time.Now())
			require.Equal(t, tc.want, ok)
			require.Equal(t, tc.err, err != nil, "error %v", err)
		})
	}
}

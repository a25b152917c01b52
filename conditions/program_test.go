package conditions

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// newTestEnv returns an Env with the default configuration.
func newTestEnv(t *testing.T) *Env {
	t.Helper()
	env, err := NewEnv(Config{})
	require.NoError(t, err)
	return env
}

// testVars are shaped the way a workflow sees them: decoded from JSON.
func testVars() Vars {
	purchase := map[string]any{
		"name":        "purchase.completed",
		"occurred_at": "2026-01-02T03:04:05Z",
		"properties": map[string]any{
			"amount":  50.0,
			"orderId": "o-1",
			"count":   json.Number("2"),
			"ratio":   json.Number("2.5"),
			"huge":    json.Number("1e400"),
			"items": []any{
				map[string]any{"sku": "A", "price": 10.0},
				map[string]any{"sku": "B", "price": 40.0},
			},
			"tags": []any{"new", "promo"},
		},
	}
	return Vars{
		Event:   purchase,
		Trigger: purchase,
		Contact: map[string]any{
			"id":         "c-1",
			"email":      "Ada@Example.com",
			"first_name": "Ada",
			"last_name":  "Lovelace",
			"properties": map[string]any{"plan": "pro", "age": 36.0, "occurred_at": "yesterday"},
		},
		Now: time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC),
	}
}

func TestEvalBool(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	tests := []struct {
		name    string
		expr    string
		vars    func(v *Vars)
		want    bool
		wantErr error
	}{
		{name: "double against int literal", expr: "event.properties.amount >= 50", want: true},
		{name: "double against double literal", expr: "event.properties.amount >= 50.0", want: true},
		{name: "strictly greater", expr: "event.properties.amount > 50", want: false},
		{name: "json.Number as int", expr: "event.properties.count == 2 && event.properties.count < 2.5", want: true},
		{name: "string equality", expr: "contact.properties.plan == 'pro'", want: true},
		{name: "in list", expr: "contact.properties.plan in ['pro', 'team']", want: true},
		{name: "event name", expr: "event.name == 'purchase.completed'", want: true},
		{name: "trigger and event", expr: "event.properties.orderId == trigger.properties.orderId", want: true},
		{name: "missing key is false", expr: "event.properties.coupon == 'X'", want: false, wantErr: ErrNoSuchKey},
		{name: "missing nested map is false", expr: "contact.properties.address.city == 'Paris'", want: false, wantErr: ErrNoSuchKey},
		{name: "index out of range is false", expr: "event.properties.items[5].sku == 'A'", want: false, wantErr: ErrNoSuchKey},
		{name: "has on a missing key", expr: "has(event.properties.coupon)", want: false},
		{name: "has on a present key", expr: "has(event.properties.orderId)", want: true},
		{name: "optional default", expr: "event.properties.?coupon.orValue('none') == 'none'", want: true},
		{name: "error absorbed by or", expr: "event.properties.coupon == 'X' || true", want: true},
		{name: "error absorbed by and", expr: "event.properties.coupon == 'X' && false", want: false},
		{name: "lower and ends with", expr: "contact.email.lowerAscii().endsWith('@example.com')", want: true},
		{name: "contains", expr: "contact.email.contains('Example')", want: true},
		{name: "matches", expr: "contact.email.matches('^[A-Za-z]+@')", want: true},
		{name: "split", expr: "contact.email.split('@')[1] == 'Example.com'", want: true},
		{name: "format", expr: "'%s %s'.format([contact.first_name, contact.last_name]) == 'Ada Lovelace'", want: true},
		{name: "exists", expr: "event.properties.items.exists(i, i.price > 15.0)", want: true},
		{name: "all", expr: "event.properties.items.all(i, i.price > 15)", want: false},
		{name: "filter size", expr: "event.properties.items.filter(i, i.price >= 10).size() == 2", want: true},
		{name: "map keys", expr: "contact.properties.exists(k, k.startsWith('pl'))", want: true},
		{name: "math ext", expr: "math.greatest(event.properties.items.map(i, i.price)) == 40.0", want: true},
		{name: "occurred_at is a timestamp", expr: "now - event.occurred_at < duration('1h')", want: true},
		{name: "timestamp literal", expr: "now > timestamp('2026-01-01T00:00:00Z')", want: true},
		{name: "now accessors in UTC", expr: "now.getHours() == 4 && now.getDayOfWeek() == 5", want: true},
		{name: "timestamp() of a timestamp", expr: "timestamp(trigger.occurred_at) == trigger.occurred_at", want: true},
		{
			name: "time.Time occurred_at works too",
			expr: "event.occurred_at == timestamp('2026-01-02T03:04:05Z')",
			vars: func(v *Vars) {
				v.Event = map[string]any{"occurred_at": time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
			},
			want: true,
		},
		{
			name: "an occurred_at that is not RFC 3339 stays a string",
			expr: "event.occurred_at == 'yesterday'",
			vars: func(v *Vars) { v.Event = map[string]any{"occurred_at": "yesterday"} },
			want: true,
		},
		{
			name: "unset maps are empty",
			expr: "size(contact) == 0 && size(event) == 0 && size(trigger) == 0",
			vars: func(v *Vars) { *v = Vars{} },
			want: true,
		},
		{name: "not a bool at runtime", expr: "event.properties.orderId", want: false, wantErr: ErrNotBool},
		{name: "division by zero", expr: "1 / (event.properties.count - 2) == 1", want: false, wantErr: ErrEval},
		{name: "bad conversion", expr: "int(contact.first_name) == 1", want: false, wantErr: ErrEval},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := env.Compile(tt.expr, KindCondition)
			require.NoError(t, err)
			vars := testVars()
			if tt.vars != nil {
				tt.vars(&vars)
			}
			got, err := p.EvalBool(context.Background(), vars)
			require.Equal(t, tt.want, got)
			if tt.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
			var evalErr *EvalError
			require.ErrorAs(t, err, &evalErr)
			require.Equal(t, tt.expr, evalErr.Expr)
		})
	}
}

func TestEvalValue(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	tests := []struct {
		name    string
		expr    string
		want    any
		wantErr error
	}{
		{name: "string", expr: "contact.email", want: "Ada@Example.com"},
		{name: "concatenation", expr: "'Hello ' + contact.first_name + '!'", want: "Hello Ada!"},
		{name: "double", expr: "event.properties.amount * 2.0", want: 100.0},
		{name: "int", expr: "size(event.properties.items)", want: int64(2)},
		{name: "uint", expr: "1u", want: uint64(1)},
		{name: "bool", expr: "true", want: true},
		{name: "null", expr: "null", want: nil},
		{name: "empty optional", expr: "event.properties.?coupon", want: nil},
		{name: "full optional", expr: "event.properties.?orderId", want: "o-1"},
		{name: "list", expr: "event.properties.items.map(i, i.sku)", want: []any{"A", "B"}},
		{
			name: "map literal",
			expr: "{'plan': contact.properties.plan, 'ids': [1, 2], 'nested': {'ok': true}}",
			want: map[string]any{"plan": "pro", "ids": []any{int64(1), int64(2)}, "nested": map[string]any{"ok": true}},
		},
		{name: "int map keys become strings", expr: "{1: 'a', 2: 'b'}", want: map[string]any{"1": "a", "2": "b"}},
		{
			name: "input map passes through",
			expr: "event.properties.items[1]",
			want: map[string]any{"sku": "B", "price": 40.0},
		},
		{name: "map keys in sorted order", expr: "event.properties.map(k, k)", want: []any{"amount", "count", "huge", "items", "orderId", "ratio", "tags"}},
		{name: "timestamp", expr: "now", want: "2026-01-02T04:00:00Z"},
		{name: "timestamp arithmetic", expr: "event.occurred_at + duration('90m')", want: "2026-01-02T04:34:05Z"},
		{name: "duration", expr: "duration('90m')", want: "5400s"},
		{name: "bytes", expr: "b'hi'", want: "aGk="},
		{name: "base64 ext", expr: "base64.encode(bytes(contact.first_name))", want: "QWRh"},
		{name: "join", expr: "event.properties.tags.join(', ')", want: "new, promo"},
		{name: "json.Number int", expr: "event.properties.count", want: int64(2)},
		{name: "json.Number double", expr: "event.properties.ratio", want: 2.5},
		{name: "json.Number out of range stays a string", expr: "event.properties.huge", want: "1e400"},
		{name: "only events get occurred_at converted", expr: "contact.properties.occurred_at", want: "yesterday"},
		{name: "missing key", expr: "event.properties.coupon", wantErr: ErrNoSuchKey},
		{name: "infinity is not JSON", expr: "1.0 / 0.0", wantErr: ErrNotJSON},
		{name: "NaN in a list is not JSON", expr: "[0.0 / 0.0]", wantErr: ErrNotJSON},
		{name: "NaN in a map is not JSON", expr: "{'x': 0.0 / 0.0}", wantErr: ErrNotJSON},
		{name: "type is not JSON", expr: "type(1)", wantErr: ErrNotJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := env.Compile(tt.expr, KindValue)
			require.NoError(t, err)
			got, err := p.EvalValue(context.Background(), testVars())
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			_, err = json.Marshal(got)
			require.NoError(t, err)
		})
	}
}

func TestMapIterationIsDeterministic(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	p, err := env.Compile("event.properties.map(k, [k, event.properties[k]])", KindValue)
	require.NoError(t, err)
	props := map[string]any{}
	var want []any
	for i := range 50 {
		k := fmt.Sprintf("k%02d", i)
		props[k] = fmt.Sprint(i)
		want = append(want, []any{k, fmt.Sprint(i)})
	}
	for range 20 {
		got, err := p.EvalValue(context.Background(), Vars{Event: map[string]any{"properties": props}})
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
}

func TestEvalErrorMessage(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	p, err := env.Compile("event.properties.coupon == 'X'", KindCondition)
	require.NoError(t, err)
	_, err = p.EvalBool(context.Background(), testVars())
	require.EqualError(t, err, `evaluate "event.properties.coupon == 'X'": no such key: coupon`)

	long := "event.properties.coupon == '" + string(make([]byte, 100)) + "'"
	p, err = env.Compile(long, KindCondition)
	require.NoError(t, err)
	_, err = p.EvalBool(context.Background(), testVars())
	require.Contains(t, err.Error(), `…": no such key: coupon`)
}

func TestProgramAccessors(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	p, err := env.Compile("event.properties.items.exists(i, i.price > 15.0)", KindCondition)
	require.NoError(t, err)
	require.Equal(t, "event.properties.items.exists(i, i.price > 15.0)", p.Expr())
	require.Equal(t, KindCondition, p.Kind())
	require.Positive(t, p.EstimatedCost())
	require.LessOrEqual(t, p.EstimatedCost(), env.Config().CostBudget)
}

func TestConcurrentEvaluation(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				expr := fmt.Sprintf("event.properties.amount >= %d", (i*50+j)%100)
				p, err := env.Compile(expr, KindCondition)
				if err != nil {
					t.Error(err)
					return
				}
				got, err := p.EvalBool(context.Background(), testVars())
				if err != nil || got != ((i*50+j)%100 <= 50) {
					t.Errorf("%s = %v, %v", expr, got, err)
				}
			}
		}()
	}
	wg.Wait()
}

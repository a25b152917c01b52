package conditions

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/interpreter"
)

// Vars are the values an expression is evaluated against. Maps hold what encoding/json produces
// (map[string]any, []any, string, float64, bool, nil; json.Number, int64 and time.Time work too).
// A nil map is bound as an empty one, so reading from it is a missing key, not a crash.
type Vars struct {
	// Event is the event being matched or, in step scope, the trigger again (definition.Scope
	// says which): {"name", "properties", "occurred_at"}. An RFC 3339 occurred_at string is bound
	// as a timestamp.
	Event map[string]any
	// Trigger is the event that started the enrollment, shaped like Event.
	Trigger map[string]any
	// Contact is the enrolled contact: {"id", "email", "first_name", "last_name", "properties"}.
	Contact map[string]any
	// Events are the events matched by the waits on several events whose yes steps enclose the
	// expression, by event name, each shaped like Event; empty elsewhere.
	Events map[string]map[string]any
	// Now is the current time, passed in rather than read from a clock so that evaluation is
	// deterministic; a workflow passes workflow.Now.
	Now time.Time
	// Segments lists the segments the contact is in, among Program.Segments: what
	// in_segment tests.
	Segments []string
}

// Program is a compiled expression. It is immutable and safe for concurrent use.
type Program struct {
	env  *Env
	expr string
	kind Kind
	prg  cel.Program
	cost uint64
	// paths are the variables' fields the expression reads, such as
	// event.properties.amount, for Reads.
	paths [][]string
	// comparisons are its comparisons of a field with a literal.
	comparisons []Comparison
	// segments are the ids in_segment names.
	segments []string
}

// Expr returns the source of the expression.
func (p *Program) Expr() string {
	return p.expr
}

// Kind returns the kind the expression was compiled as.
func (p *Program) Kind() Kind {
	return p.kind
}

// EstimatedCost returns the worst-case cost CEL estimated at compile time, within the budget.
func (p *Program) EstimatedCost() uint64 {
	return p.cost
}

// EvalBool evaluates a condition. When evaluation fails it returns false together with an
// *EvalError, so a caller can log the error and carry on with false: a condition about a property
// the event does not have is simply not met, rather than a crashed enrollment. errors.Is on the
// error tells the usual case, ErrNoSuchKey, from limits being hit (ErrCostLimit, ErrTimeout) or a
// non-bool result (ErrNotBool). Authors who want to be explicit can write has(event.properties.x)
// or event.properties.?x.orValue(…).
func (p *Program) EvalBool(ctx context.Context, vars Vars) (bool, error) {
	out, err := p.eval(ctx, vars)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, &EvalError{Expr: p.expr, Reason: ErrNotBool, Err: fmt.Errorf("got %s, want bool", out.Type().TypeName())}
	}
	return bool(b), nil
}

// EvalValue evaluates a value and returns it as plain Go that encoding/json can marshal:
// map[string]any, []any, string, float64, int64, uint64, bool or nil. Timestamps become RFC 3339
// strings, durations strings such as "90s", bytes base64 strings, an empty optional nil, and map
// keys strings. Errors are *EvalError, as for EvalBool.
func (p *Program) EvalValue(ctx context.Context, vars Vars) (any, error) {
	out, err := p.eval(ctx, vars)
	if err != nil {
		return nil, err
	}
	v, err := toJSON(out)
	if err != nil {
		return nil, &EvalError{Expr: p.expr, Reason: ErrNotJSON, Err: err}
	}
	return v, nil
}

func (p *Program) eval(ctx context.Context, vars Vars) (ref.Val, error) {
	if err := ctx.Err(); err != nil {
		return nil, &EvalError{Expr: p.expr, Reason: ErrTimeout, Err: err}
	}
	if spent(ctx) {
		return nil, &EvalError{Expr: p.expr, Reason: ErrBudget, Err: ErrBudget}
	}
	if timeout := p.env.cfg.Timeout; timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	a := p.env.adapter
	activation := map[string]any{
		"event":     a.NativeToValue(eventValue(vars.Event)),
		"trigger":   a.NativeToValue(eventValue(vars.Trigger)),
		"contact":   a.NativeToValue(orEmpty(vars.Contact)),
		"now":       types.Timestamp{Time: vars.Now},
		"events":    a.NativeToValue(eventsValue(vars.Events)),
		segmentsVar: a.NativeToValue(orNoSegments(vars.Segments)),
	}
	out, det, err := p.prg.ContextEval(ctx, activation)
	// What an evaluation spent counts against the event's budget; one cut
	// short counts in full.
	cost := p.env.cfg.CostLimit
	if det != nil && err == nil {
		if c := det.ActualCost(); c != nil {
			cost = *c
		}
	}
	spend(ctx, cost)
	if err != nil {
		return nil, &EvalError{Expr: p.expr, Reason: reason(err), Err: err}
	}
	return out, nil
}

// eventsValue binds matched events, each as eventValue binds an event.
func eventsValue(m map[string]map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for name, e := range m {
		out[name] = eventValue(e)
	}
	return out
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// reason classifies an evaluation error. CEL reports a missing key only through its message, so
// that is what is matched.
func reason(err error) error {
	var cancelled interpreter.EvalCancelledError
	switch {
	case errors.As(err, &cancelled) && cancelled.Cause == interpreter.CostLimitExceeded:
		return ErrCostLimit
	case errors.Is(err, context.DeadlineExceeded):
		return ErrTimeout
	case strings.HasPrefix(err.Error(), "no such key"), strings.HasPrefix(err.Error(), "index out of bounds"):
		return ErrNoSuchKey
	default:
		return ErrEval
	}
}

// toJSON converts a CEL result to the Go values encoding/json marshals.
func toJSON(v ref.Val) (any, error) {
	switch v := v.(type) {
	case types.Null:
		return nil, nil
	case types.Bool:
		return bool(v), nil
	case types.Int:
		return int64(v), nil
	case types.Uint:
		return uint64(v), nil
	case types.Double:
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%v is not a JSON number", f)
		}
		return f, nil
	case types.String:
		return string(v), nil
	case types.Bytes:
		return base64.StdEncoding.EncodeToString(v), nil
	case types.Timestamp:
		return v.UTC().Format(time.RFC3339Nano), nil
	case types.Duration:
		return v.ConvertToType(types.StringType).Value(), nil
	case *types.Optional:
		if !v.HasValue() {
			return nil, nil
		}
		return toJSON(v.GetValue())
	case traits.Lister:
		out := make([]any, 0, int(v.Size().(types.Int)))
		for it := v.Iterator(); it.HasNext() == types.True; {
			item, err := toJSON(it.Next())
			if err != nil {
				return nil, err
			}
			out = append(out, item)
		}
		return out, nil
	case traits.Mapper:
		out := make(map[string]any, int(v.Size().(types.Int)))
		for it := v.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			key, ok := k.ConvertToType(types.StringType).(types.String)
			if !ok {
				return nil, fmt.Errorf("map key of type %s has no JSON form", k.Type().TypeName())
			}
			item, err := toJSON(v.Get(k))
			if err != nil {
				return nil, err
			}
			out[string(key)] = item
		}
		return out, nil
	default:
		return nil, fmt.Errorf("a %s has no JSON form", v.Type().TypeName())
	}
}

func orNoSegments(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

package conditions

import (
	"fmt"
	"slices"

	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"

	"github.com/signalbox/signalbox/segment"
)

// SegmentWhere parses the where filter of a segment's performed condition:
// CEL over event.properties limited to what runs as SQL over every
// contact's events at once: comparisons of a property with a literal
// (== != < <= > >=), x in [literals], has(event.properties.x), joined by
// &&, || and !. It implements segment.WhereParser.
func (e *Env) SegmentWhere(src string) (*segment.Expr, error) {
	parsed, iss := e.cel.Parse(src)
	if iss.Err() != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, issuesDetail(iss))
	}
	return whereExpr(parsed.NativeRep().Expr())
}

var whereOps = map[string]string{
	operators.Equals: "==", operators.NotEquals: "!=", operators.Less: "<", operators.LessEquals: "<=",
	operators.Greater: ">", operators.GreaterEquals: ">=", operators.In: "in",
}

func whereExpr(x ast.Expr) (*segment.Expr, error) {
	switch x.Kind() {
	case ast.CallKind:
		call := x.AsCall()
		args := call.Args()
		switch call.FunctionName() {
		case operators.LogicalAnd, operators.LogicalOr:
			l, err := whereExpr(args[0])
			if err != nil {
				return nil, err
			}
			r, err := whereExpr(args[1])
			if err != nil {
				return nil, err
			}
			if call.FunctionName() == operators.LogicalAnd {
				return &segment.Expr{And: []*segment.Expr{l, r}}, nil
			}
			return &segment.Expr{Or: []*segment.Expr{l, r}}, nil
		case operators.LogicalNot:
			inner, err := whereExpr(args[0])
			if err != nil {
				return nil, err
			}
			return &segment.Expr{Not: inner}, nil
		}
		op, ok := whereOps[call.FunctionName()]
		if !ok || len(args) != 2 {
			return nil, fmt.Errorf("%w: a segment filter can only compare event.properties with literals "+
				"(== != < <= > >= in, has()), joined by && and || and negated with ! (not)", ErrInvalid)
		}
		left, right := args[0], args[1]
		path, ok := propertyPath(left)
		ok = ok && len(path) > 0
		if !ok && op != "in" {
			// A literal on the left: flip the comparison.
			if path, ok = propertyPath(right); ok && len(path) > 0 {
				left, right = right, left
				op = map[string]string{"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}[op]
			}
		}
		if !ok {
			return nil, fmt.Errorf("%w: one side of %s must be a property such as event.properties.plan", ErrInvalid, op)
		}
		var value any
		if op == "in" {
			if right.Kind() != ast.ListKind {
				return nil, fmt.Errorf("%w: in takes a list of literals such as [\"a\", \"b\"]", ErrInvalid)
			}
			var list []any
			for _, el := range right.AsList().Elements() {
				v, ok := literal(el)
				if !ok {
					return nil, fmt.Errorf("%w: in takes a list of literals", ErrInvalid)
				}
				list = append(list, v)
			}
			value = list
		} else {
			v, ok := literal(right)
			if !ok {
				return nil, fmt.Errorf("%w: event.properties can only be compared with a literal here", ErrInvalid)
			}
			if _, isNum := v.(float64); !isNum && slices.Contains([]string{"<", "<=", ">", ">="}, op) {
				if _, isStr := v.(string); !isStr {
					return nil, fmt.Errorf("%w: %s compares with a number or a string", ErrInvalid, op)
				}
			}
			value = v
		}
		return &segment.Expr{Path: path, Op: op, Value: value}, nil
	case ast.SelectKind:
		sel := x.AsSelect()
		if sel.IsTestOnly() {
			path, ok := propertyPath(sel.Operand())
			if ok {
				return &segment.Expr{Path: append(path, sel.FieldName()), Op: "has"}, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: a segment filter must be a condition on event.properties, such as event.properties.plan == \"pro\"", ErrInvalid)
}

// propertyPath reads event.properties.a.b (or ["a"]) as [a b].
func propertyPath(x ast.Expr) ([]string, bool) {
	var rev []string
	for {
		switch x.Kind() {
		case ast.SelectKind:
			sel := x.AsSelect()
			if sel.IsTestOnly() {
				return nil, false
			}
			rev = append(rev, sel.FieldName())
			x = sel.Operand()
			continue
		case ast.CallKind:
			call := x.AsCall()
			if call.FunctionName() == operators.Index && len(call.Args()) == 2 {
				if v, ok := literal(call.Args()[1]); ok {
					if s, ok := v.(string); ok {
						rev = append(rev, s)
						x = call.Args()[0]
						continue
					}
				}
			}
			return nil, false
		case ast.IdentKind:
			if x.AsIdent() != "event" || len(rev) < 1 || rev[len(rev)-1] != "properties" {
				return nil, false
			}
			path := make([]string, 0, len(rev)-1)
			for i := len(rev) - 2; i >= 0; i-- {
				path = append(path, rev[i])
			}
			return path, true
		default:
			return nil, false
		}
	}
}

// literal reads a literal as JSON-like Go value.
func literal(x ast.Expr) (any, bool) {
	if x.Kind() != ast.LiteralKind {
		if x.Kind() == ast.CallKind && x.AsCall().FunctionName() == operators.Negate {
			if v, ok := literal(x.AsCall().Args()[0]); ok {
				if f, ok := v.(float64); ok {
					return -f, true
				}
			}
		}
		return nil, false
	}
	switch v := x.AsLiteral().(type) {
	case types.String:
		return string(v), true
	case types.Int:
		return float64(v), true
	case types.Uint:
		return float64(v), true
	case types.Double:
		return float64(v), true
	case types.Bool:
		return bool(v), true
	case types.Null:
		return nil, true
	}
	return nil, false
}

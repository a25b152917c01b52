package conditions

import (
	"fmt"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"

	"github.com/signalbox/signalbox/definition"
)

// segmentsVar holds the ids of the segments the contact is in, among those
// the expression names; in_segment("ID") expands to "ID" in segmentsVar.
// The caller reads memberships fresh (Program.Segments says which) and
// passes them as Vars.Segments.
const segmentsVar = "_segments"

// inSegmentMacro expands in_segment(id), which takes a string literal so
// that the segments an expression needs are known when it is compiled.
var inSegmentMacro = cel.GlobalMacro("in_segment", 1, func(eh cel.MacroExprFactory, _ ast.Expr, args []ast.Expr) (ast.Expr, *common.Error) {
	if args[0].Kind() != ast.LiteralKind {
		return nil, eh.NewError(args[0].ID(), "in_segment takes a segment id as a string literal, such as in_segment(\"019c...\")")
	}
	if _, ok := args[0].AsLiteral().(types.String); !ok {
		return nil, eh.NewError(args[0].ID(), "in_segment takes a segment id as a string literal")
	}
	return eh.NewCall(operators.In, args[0], eh.NewIdent(segmentsVar)), nil
})

// segmentIDs lists the segment ids an expression names with in_segment.
func segmentIDs(x ast.Expr) []string {
	var out []string
	seen := map[string]bool{}
	var walk func(x ast.Expr)
	walk = func(x ast.Expr) {
		switch x.Kind() {
		case ast.CallKind:
			call := x.AsCall()
			args := call.Args()
			if call.FunctionName() == operators.In && len(args) == 2 && args[1].Kind() == ast.IdentKind &&
				args[1].AsIdent() == segmentsVar && args[0].Kind() == ast.LiteralKind {
				if s, ok := args[0].AsLiteral().(types.String); ok && !seen[string(s)] {
					seen[string(s)] = true
					out = append(out, string(s))
				}
			}
			if call.IsMemberFunction() {
				walk(call.Target())
			}
			for _, a := range args {
				walk(a)
			}
		case ast.SelectKind:
			walk(x.AsSelect().Operand())
		case ast.ListKind:
			for _, e := range x.AsList().Elements() {
				walk(e)
			}
		case ast.MapKind:
			for _, e := range x.AsMap().Entries() {
				walk(e.AsMapEntry().Key())
				walk(e.AsMapEntry().Value())
			}
		case ast.ComprehensionKind:
			c := x.AsComprehension()
			walk(c.IterRange())
			walk(c.AccuInit())
			walk(c.LoopCondition())
			walk(c.LoopStep())
			walk(c.Result())
		}
	}
	walk(x)
	return out
}

// checkSegmentScope refuses in_segment where it cannot be evaluated on fresh
// data when the step runs.
func checkSegmentScope(p *Program, scope definition.Scope, kind Kind) error {
	if len(p.segments) == 0 {
		return nil
	}
	if kind == KindCondition && (scope == definition.ScopeStep || scope == definition.ScopeWait) {
		return nil
	}
	where := "a trigger condition, which is evaluated as the event is recorded"
	if kind == KindValue {
		where = "a value"
	}
	return fmt.Errorf("%w: in_segment cannot be used in %s; use it in a step condition (branch or wait_for_event), "+
		"which reads the segment when the step runs", ErrInvalid, where)
}

// Segments returns the ids of the segments the expression tests with
// in_segment; Vars.Segments must say which of them the contact is in.
func (p *Program) Segments() []string { return p.segments }

package conditions

import (
	"slices"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
)

// Comparison is a field path compared with a literal in an expression
// (event.properties.amount >= 50.0), found in the checked AST, so that a
// save can warn when a schema gives the field another type.
type Comparison struct {
	// Path is the field read, from its variable: ["event", "properties", "amount"].
	Path []string
	// Literal is the JSON type of the literal: "string", "number", "boolean"
	// or "null".
	Literal string
}

// comparisonOps are the operators whose operands must have one type.
var comparisonOps = []string{operators.Equals, operators.NotEquals, operators.Less, operators.LessEquals,
	operators.Greater, operators.GreaterEquals, operators.In}

// readComparisons lists the comparisons of a field path with a literal (or,
// for in, with a list of literals), in source order.
func readComparisons(a *cel.Ast) []Comparison {
	var out []Comparison
	root := celast.NavigateAST(a.NativeRep())
	for _, e := range celast.MatchDescendants(root, celast.KindMatcher(celast.CallKind)) {
		call := e.AsCall()
		if !slices.Contains(comparisonOps, call.FunctionName()) || len(call.Args()) != 2 {
			continue
		}
		l, r := call.Args()[0], call.Args()[1]
		if call.FunctionName() == operators.In {
			path := selectPath(l)
			if path == nil || r.Kind() != celast.ListKind {
				continue
			}
			for _, el := range r.AsList().Elements() {
				if lit := literalType(el); lit != "" {
					out = append(out, Comparison{Path: path, Literal: lit})
					break
				}
			}
			continue
		}
		for _, pair := range [][2]celast.Expr{{l, r}, {r, l}} {
			if path, lit := selectPath(pair[0]), literalType(pair[1]); path != nil && lit != "" {
				out = append(out, Comparison{Path: path, Literal: lit})
			}
		}
	}
	return out
}

// selectPath is the variable path an expression selects, or nil.
func selectPath(e celast.Expr) []string {
	var path []string
	for e.Kind() == celast.SelectKind {
		path = append(path, e.AsSelect().FieldName())
		e = e.AsSelect().Operand()
	}
	if e.Kind() != celast.IdentKind || len(path) == 0 {
		return nil
	}
	path = append(path, e.AsIdent())
	slices.Reverse(path)
	return path
}

// literalType is the JSON type of a literal, or "" for anything else.
func literalType(e celast.Expr) string {
	if e.Kind() != celast.LiteralKind {
		return ""
	}
	switch e.AsLiteral().Type() {
	case types.StringType:
		return "string"
	case types.IntType, types.UintType, types.DoubleType:
		return "number"
	case types.BoolType:
		return "boolean"
	case types.NullType:
		return "null"
	}
	return ""
}

// Paths returns the field paths the expression reads from its variables
// (["event", "properties", "amount"]), outermost selections only.
func (p *Program) Paths() [][]string { return p.paths }

// Comparisons returns where the expression compares a field with a literal.
func (p *Program) Comparisons() []Comparison { return p.comparisons }

package conditions

import (
	"slices"
	"strings"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
)

// readPaths lists the field paths an expression reads from its variables
// (event.properties.amount, contact.email), outermost selections only, in
// source order without repeats.
func readPaths(a *cel.Ast) [][]string {
	var out [][]string
	root := celast.NavigateAST(a.NativeRep())
	for _, e := range celast.MatchDescendants(root, celast.KindMatcher(celast.SelectKind)) {
		if parent, ok := e.Parent(); ok && parent.Kind() == celast.SelectKind && parent.AsSelect().Operand().ID() == e.ID() {
			continue // part of a longer path
		}
		var path []string
		cur := celast.Expr(e)
		for cur.Kind() == celast.SelectKind {
			sel := cur.AsSelect()
			path = append(path, sel.FieldName())
			cur = sel.Operand()
		}
		if cur.Kind() != celast.IdentKind {
			continue
		}
		path = append(path, cur.AsIdent())
		slices.Reverse(path)
		switch path[0] {
		case "event", "trigger", "contact":
		default:
			continue
		}
		if !slices.ContainsFunc(out, func(p []string) bool { return slices.Equal(p, path) }) {
			out = append(out, path)
		}
	}
	return out
}

// Reads returns the values the expression reads from vars, by path
// ("event.properties.amount": 30), so a condition that did not hold can
// say why. A path the data lacks is left out.
func (p *Program) Reads(vars Vars) map[string]any {
	out := map[string]any{}
	for _, path := range p.paths {
		var cur any
		switch path[0] {
		case "event":
			cur = eventValue(vars.Event)
		case "trigger":
			cur = eventValue(vars.Trigger)
		case "contact":
			cur = orEmpty(vars.Contact)
		}
		found := true
		for _, k := range path[1:] {
			m, ok := cur.(map[string]any)
			if !ok {
				found = false
				break
			}
			if cur, ok = m[k]; !ok {
				found = false
				break
			}
		}
		if found {
			out[strings.Join(path, ".")] = cur
		}
	}
	return out
}

// MatchedEvents reports whether expr reads the events variable, and the
// event names it reads with a constant key (events["order.paid"],
// events.signup), in source order without repeats. It implements
// definition.MatchedEventsReader; an expression that does not compile reads
// nothing (CheckCondition and CheckValue report it).
func (e *Env) MatchedEvents(expr string) (bool, []string) {
	ast, iss := e.cel.Parse(expr)
	if iss.Err() != nil {
		return false, nil
	}
	var (
		reads bool
		names []string
	)
	add := func(name string) {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	root := celast.NavigateAST(ast.NativeRep())
	for _, x := range celast.MatchDescendants(root, celast.AllMatcher()) {
		switch x.Kind() {
		case celast.IdentKind:
			reads = reads || x.AsIdent() == "events"
		case celast.SelectKind:
			if op := x.AsSelect().Operand(); op.Kind() == celast.IdentKind && op.AsIdent() == "events" {
				add(x.AsSelect().FieldName())
			}
		case celast.CallKind:
			call := x.AsCall()
			if (call.FunctionName() != "_[_]" && call.FunctionName() != "_[?_]") || len(call.Args()) != 2 {
				continue
			}
			target, key := call.Args()[0], call.Args()[1]
			if target.Kind() != celast.IdentKind || target.AsIdent() != "events" || key.Kind() != celast.LiteralKind {
				continue
			}
			if s, ok := key.AsLiteral().Value().(string); ok {
				add(s)
			}
		}
	}
	return reads, names
}

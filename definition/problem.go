package definition

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a definition, located so that an editor can underline it.
type Problem struct {
	// Pointer is an RFC 6901 JSON pointer into the document, such as "/steps/2/yes/0/condition";
	// the empty string means the whole document.
	Pointer string `json:"pointer"`
	// Detail says what is wrong in words meant for the author of the definition.
	Detail string `json:"detail"`
}

// String formats the problem as "pointer: detail".
func (p Problem) String() string {
	if p.Pointer == "" {
		return p.Detail
	}
	return p.Pointer + ": " + p.Detail
}

// ParseError carries the problems that stopped Automation.UnmarshalJSON or Step.UnmarshalJSON.
type ParseError struct {
	// Problems is never empty and is sorted like the result of Parse.
	Problems []Problem
}

// Error lists the problems on one line.
func (e *ParseError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "invalid automation definition: " + strings.Join(parts, "; ")
}

// pointer builds RFC 6901 JSON pointers one reference token at a time.
type pointer string

// key appends an object member name, escaped as RFC 6901 requires ("~" then "/").
func (p pointer) key(name string) pointer {
	name = strings.ReplaceAll(name, "~", "~0")
	name = strings.ReplaceAll(name, "/", "~1")
	return p + "/" + pointer(name)
}

// index appends an array index.
func (p pointer) index(i int) pointer {
	return p + "/" + pointer(strconv.Itoa(i))
}

// within reports whether p is parent or lies inside it, comparing whole reference tokens so that
// "/steps/10" is not inside "/steps/1".
func within(p, parent string) bool {
	return p == parent || strings.HasPrefix(p, parent+"/")
}

// sortProblems orders problems by pointer, token by token, comparing array indexes as numbers
// so that /steps/2 comes before /steps/10, then by detail; it drops exact duplicates. The order
// depends only on the problems, never on map iteration or the order they were found in.
func sortProblems(ps []Problem) []Problem {
	slices.SortFunc(ps, func(a, b Problem) int {
		if c := comparePointers(a.Pointer, b.Pointer); c != 0 {
			return c
		}
		return strings.Compare(a.Detail, b.Detail)
	})
	return slices.Compact(ps)
}

func comparePointers(a, b string) int {
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(as) && i < len(bs); i++ {
		if as[i] == bs[i] {
			continue
		}
		ai, aerr := strconv.Atoi(as[i])
		bi, berr := strconv.Atoi(bs[i])
		if aerr == nil && berr == nil {
			return cmp.Compare(ai, bi)
		}
		return strings.Compare(as[i], bs[i])
	}
	return cmp.Compare(len(as), len(bs))
}

// problems collects problems; both the decoder and the validator embed it.
type problems struct {
	list []Problem
}

func (ps *problems) add(at pointer, format string, args ...any) {
	ps.list = append(ps.list, Problem{Pointer: string(at), Detail: fmt.Sprintf(format, args...)})
}

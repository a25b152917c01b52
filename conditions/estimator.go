package conditions

import (
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
)

// sizeEstimator tells CEL's cost estimator how big the inputs may be. Without it every map, list
// and string read from event, trigger or contact has an unknown size, any comprehension over
// one estimates as unbounded, and every such expression would be refused.
type sizeEstimator struct {
	collection uint64 // entries in a map or list
	str        uint64 // characters in a string, bytes in bytes
}

// EstimateSize implements checker.CostEstimator. Everything read from the variables is dyn, and a
// dyn value gets the collection hint: iteration is where cost multiplies, while string functions
// cost a fraction of a unit per character and are caught by the runtime limit if a string is
// longer than assumed.
func (e sizeEstimator) EstimateSize(node checker.AstNode) *checker.SizeEstimate {
	size := e.collection
	switch node.Type().Kind() {
	case types.StringKind, types.BytesKind:
		size = e.str
	}
	return &checker.SizeEstimate{Min: 0, Max: size}
}

// EstimateCallCost implements checker.CostEstimator; the libraries' own estimates suffice, as
// Signalbox adds no functions.
func (sizeEstimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

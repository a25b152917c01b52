package conditions

import (
	"errors"
	"fmt"
)

// Errors from Compile. They are wrapped with a detail written for the expression's author.
var (
	// ErrInvalid means the expression does not parse or type-check: a syntax error, an undeclared
	// name (such as an unquoted string), a condition that is not a bool, or source that is too
	// long or too deeply nested.
	ErrInvalid = errors.New("invalid expression")
	// ErrTooExpensive means the estimated worst-case cost is over the Env's budget.
	ErrTooExpensive = errors.New("expression too expensive")
)

// Reasons an evaluation fails, found with errors.Is on the *EvalError that carries them.
var (
	// ErrNoSuchKey means the expression read a map key or list index that the data lacks, such
	// as event.properties.coupon on an event without a coupon. It is a fact about the data, not a
	// fault: guard with has(event.properties.coupon) or event.properties.?coupon.
	ErrNoSuchKey = errors.New("no such key")
	// ErrCostLimit means the evaluation spent more than the runtime cost limit.
	ErrCostLimit = errors.New("cost limit exceeded")
	// ErrTimeout means the evaluation ran past its deadline.
	ErrTimeout = errors.New("evaluation timed out")
	// ErrBudget means the event's conditions had spent their budget together (see Budget), so
	// this one was not evaluated.
	ErrBudget = errors.New("the event's condition budget is spent")
	// ErrNotBool means a condition produced something other than a bool.
	ErrNotBool = errors.New("condition is not a bool")
	// ErrNotJSON means a value has no JSON form, such as NaN.
	ErrNotJSON = errors.New("value has no JSON form")
	// ErrEval is any other runtime failure, such as division by zero or a bad conversion.
	ErrEval = errors.New("evaluation failed")
)

// EvalError reports an expression that failed to evaluate.
type EvalError struct {
	// Expr is the expression's source.
	Expr string
	// Reason is one of ErrNoSuchKey, ErrCostLimit, ErrTimeout, ErrBudget, ErrNotBool, ErrNotJSON,
	// ErrEval.
	Reason error
	// Err is the underlying failure, with CEL's wording.
	Err error
}

// Error names the expression, shortened, and the failure.
func (e *EvalError) Error() string {
	expr := []rune(e.Expr)
	if len(expr) > maxExprInError {
		expr = append(expr[:maxExprInError], '…')
	}
	return fmt.Sprintf("evaluate %q: %v", string(expr), e.Err)
}

// Unwrap exposes both Reason and Err to errors.Is and errors.As.
func (e *EvalError) Unwrap() []error {
	return []error{e.Reason, e.Err}
}

// maxExprInError keeps log lines short when an expression is long.
const maxExprInError = 80

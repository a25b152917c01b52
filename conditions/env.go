// Package conditions compiles and evaluates the CEL expressions of automation definitions:
// trigger and wait conditions, branch conditions, and the values steps compute.
//
// Every expression sees five variables: event, trigger and contact (JSON-like maps), now (a
// timestamp) and events (the events a wait on several events matched, by name); see Vars for
// their shape and definition.Scope for what each is bound to where.
// Expressions are plain CEL with the standard macros (has, all, exists, map, filter), optional
// values (event.properties.?coupon.orValue('none')), and the strings, lists, math and encoders
// extensions.
//
// Untrusted authors write these expressions and the record path evaluates them per event, so
// cost is bounded three times over: the parser refuses long or deeply nested source, Compile
// refuses an expression whose estimated worst-case cost exceeds a budget, and every evaluation
// runs under a runtime cost limit and a deadline. Evaluation is pure: no I/O, no clock (now is an
// input), and maps read from the variables iterate in sorted key order, so the same inputs give
// the same result in a workflow and on its replay. (A map literal written inside an expression
// iterates in CEL's unspecified order; iterate a list when order matters.)
package conditions

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"

	"github.com/signalbox/signalbox/definition"
)

// Config tunes an Env. The zero value of each field selects its default.
type Config struct {
	// CostBudget is the highest worst-case cost Compile accepts, as estimated by CEL from the
	// expression and the size hints below. Default 10,000: with the default hints a comparison
	// costs a few units, one comprehension over event.properties up to about 1,500, and a
	// comprehension nested in another tens of thousands, which is refused.
	CostBudget uint64
	// CostLimit stops an evaluation that has spent this much actual cost, about 15ms of CPU at
	// the default of 100,000. Expressions within the budget reach it only on inputs far larger
	// than the size hints.
	CostLimit uint64
	// Timeout bounds one evaluation in wall-clock time; default 50ms, negative for none. It is
	// checked between comprehension iterations. Wall-clock time is not deterministic, so workflow
	// code that must replay identically can use an Env without a timeout and rely on CostLimit.
	Timeout time.Duration
	// MaxExpressionLength is the longest expression, in Unicode code points; default 4096.
	MaxExpressionLength int
	// MaxRecursionDepth bounds the nesting of the parsed expression; default 32.
	MaxRecursionDepth int
	// MaxCollectionSize is the number of entries the cost estimate assumes for a map or list read
	// from the variables, such as event.properties or a list inside it; default 100. It should
	// match the property limits the record path enforces: the estimate is only as good as it.
	MaxCollectionSize uint64
	// MaxStringSize is the length the cost estimate assumes for a value typed as a string whose
	// size CEL cannot see; default 1,000.
	MaxStringSize uint64
	// CacheSize is how many compiled programs are kept, least recently used evicted; default 1,024.
	CacheSize int
	// EventCostBudget is the actual cost all the conditions evaluated for one event may spend
	// together (see Budget); default DefaultEventCostBudget.
	EventCostBudget uint64
	// EventTimeout bounds the wall-clock time of one event's conditions together; default
	// DefaultEventTimeout, negative for none.
	EventTimeout time.Duration
}

// Defaults applied by NewEnv to zero Config fields.
const (
	DefaultCostBudget          = 10_000
	DefaultCostLimit           = 100_000
	DefaultTimeout             = 50 * time.Millisecond
	DefaultMaxExpressionLength = 4096
	DefaultMaxRecursionDepth   = 32
	DefaultMaxCollectionSize   = 100
	DefaultMaxStringSize       = 1_000
	DefaultCacheSize           = 1_024
)

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	def := func(v *uint64, d uint64) {
		if *v == 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.CostBudget, DefaultCostBudget)
	def(&c.CostLimit, DefaultCostLimit)
	def(&c.MaxCollectionSize, DefaultMaxCollectionSize)
	def(&c.MaxStringSize, DefaultMaxStringSize)
	defInt(&c.MaxExpressionLength, DefaultMaxExpressionLength)
	defInt(&c.MaxRecursionDepth, DefaultMaxRecursionDepth)
	defInt(&c.CacheSize, DefaultCacheSize)
	def(&c.EventCostBudget, DefaultEventCostBudget)
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.EventTimeout == 0 {
		c.EventTimeout = DefaultEventTimeout
	}
	return c
}

// interruptCheckFrequency is how many comprehension iterations run between deadline checks:
// often enough to stop within a fraction of a millisecond, rarely enough to cost nothing.
const interruptCheckFrequency = 100

// Env is a CEL environment with Signalbox's variables, limits and a cache of compiled programs.
// Build one per process with NewEnv and share it; it is safe for concurrent use.
type Env struct {
	cel       *cel.Env
	cfg       Config
	estimator sizeEstimator
	adapter   adapter
	cache     *cache
}

var _ definition.ExpressionChecker = (*Env)(nil)

// NewEnv builds the environment. It fails only on an invalid configuration.
func NewEnv(cfg Config) (*Env, error) {
	cfg = cfg.withDefaults()
	mapOfDyn := cel.MapType(cel.StringType, cel.DynType)
	env, err := cel.NewEnv(
		cel.Variable("event", mapOfDyn),
		cel.Variable("trigger", mapOfDyn),
		cel.Variable("contact", mapOfDyn),
		cel.Variable("now", cel.TimestampType),
		cel.Variable("events", cel.MapType(cel.StringType, mapOfDyn)),
		cel.Variable(segmentsVar, cel.ListType(cel.StringType)),
		cel.Macros(inSegmentMacro),
		// JSON numbers arrive as doubles, while authors write 50 as well as 50.0.
		cel.CrossTypeNumericComparisons(true),
		cel.DefaultUTCTimeZone(true),
		// Library versions are pinned so that upgrading cel-go never changes what a saved
		// expression means or whether it compiles.
		cel.OptionalTypes(cel.OptionalTypesVersion(2)),
		ext.Strings(ext.StringsVersion(5)),
		ext.Lists(ext.ListsVersion(3), ext.ListsMaxRangeSize(maxRangeSize)),
		ext.Math(ext.MathVersion(3)),
		ext.Encoders(ext.EncodersVersion(1)),
		cel.ParserExpressionSizeLimit(cfg.MaxExpressionLength),
		cel.ParserRecursionLimit(cfg.MaxRecursionDepth),
		cel.RegexProgramSizeLimit(maxRegexProgramSize),
	)
	if err != nil {
		return nil, fmt.Errorf("conditions: build CEL environment: %w", err)
	}
	return &Env{
		cel:       env,
		cfg:       cfg,
		estimator: sizeEstimator{collection: cfg.MaxCollectionSize, str: cfg.MaxStringSize},
		adapter:   adapter{base: env.CELTypeAdapter()},
		cache:     newCache(cfg.CacheSize),
	}, nil
}

// maxRangeSize caps lists.range(n). The cost estimate already prices a literal n and refuses a
// computed one, so this only backs the estimate up.
const maxRangeSize = 1_000

// maxRegexProgramSize bounds the compiled size of a regular expression in matches(); RE2 runs in
// linear time, but a huge program is still a cost the estimate does not see.
const maxRegexProgramSize = 1_000

// Config returns the configuration in effect, defaults filled in.
func (e *Env) Config() Config {
	return e.cfg
}

// CheckCondition compiles expr as a condition. It implements definition.ExpressionChecker. Every
// scope declares the same variables, so scope only appears in the documentation of what the
// interpreter binds, not in what compiles.
func (e *Env) CheckCondition(expr string, scope definition.Scope) error {
	p, err := e.Compile(expr, KindCondition)
	if err != nil {
		return err
	}
	return checkSegmentScope(p, scope, KindCondition)
}

// CheckValue compiles expr as a value. It implements definition.ExpressionChecker.
func (e *Env) CheckValue(expr string, scope definition.Scope) error {
	p, err := e.Compile(expr, KindValue)
	if err != nil {
		return err
	}
	return checkSegmentScope(p, scope, KindValue)
}

// Kind says what an expression is for, which decides the type it must have.
type Kind int

const (
	// KindCondition must yield a bool (or dyn, checked again when evaluated).
	KindCondition Kind = iota + 1
	// KindValue may yield anything that converts to JSON.
	KindValue
)

// String names the kind for messages.
func (k Kind) String() string {
	switch k {
	case KindCondition:
		return "condition"
	case KindValue:
		return "value"
	default:
		return fmt.Sprintf("Kind(%d)", int(k))
	}
}

// Compile parses, type-checks and cost-checks expr and returns a program ready to evaluate. The
// result is cached by kind and text, so compiling the same expression again is cheap; errors are
// not cached, as they are rare and a retry after a bad save should not be pinned in memory.
//
// Errors wrap ErrInvalid (syntax, undeclared variables, a condition that is not a bool, too long
// or too deeply nested) or ErrTooExpensive (estimated cost over the budget), and their text is
// written for the expression's author.
func (e *Env) Compile(expr string, kind Kind) (*Program, error) {
	if kind != KindCondition && kind != KindValue {
		return nil, fmt.Errorf("conditions: unknown kind %v", kind)
	}
	key := cacheKey{kind: kind, expr: expr}
	if p, ok := e.cache.get(key); ok {
		return p, nil
	}
	p, err := e.compile(expr, kind)
	if err != nil {
		return nil, err
	}
	e.cache.put(key, p)
	return p, nil
}

func (e *Env) compile(expr string, kind Kind) (*Program, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, fmt.Errorf("%w: the expression is empty", ErrInvalid)
	}
	ast, iss := e.cel.Compile(expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, issuesDetail(iss))
	}
	if kind == KindCondition {
		out := ast.OutputType()
		if !out.IsExactType(types.BoolType) && !out.IsExactType(types.DynType) {
			return nil, fmt.Errorf("%w: a condition must evaluate to a bool, not %s", ErrInvalid, out)
		}
	}
	est, err := e.cel.EstimateCost(ast, e.estimator)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot estimate its cost: %v", ErrInvalid, err)
	}
	if est.Max > e.cfg.CostBudget {
		return nil, fmt.Errorf("%w: its worst case costs %s units, over the budget of %d; iterate over fewer or smaller collections",
			ErrTooExpensive, costString(est.Max), e.cfg.CostBudget)
	}
	prg, err := e.cel.Program(ast,
		cel.CostLimit(e.cfg.CostLimit),
		cel.InterruptCheckFrequency(interruptCheckFrequency),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		// Programs fail to build on constant inputs that cannot work, such as a bad regex.
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return &Program{env: e, expr: expr, kind: kind, prg: prg, cost: est.Max, paths: readPaths(ast),
		comparisons: readComparisons(ast), segments: segmentIDs(ast.NativeRep().Expr())}, nil
}

// issuesDetail formats CEL's compile issues as "line:column: message" joined by "; ", without
// the source snippet and container note CEL adds, which make poor single-line problem details.
func issuesDetail(iss *cel.Issues) string {
	var parts []string
	for _, e := range iss.Errors() {
		msg := strings.TrimSuffix(e.Message, " (in container '')")
		if loc := e.Location; loc != nil && loc.Line() > 0 {
			msg = fmt.Sprintf("%d:%d: %s", loc.Line(), loc.Column()+1, msg)
		}
		parts = append(parts, msg)
	}
	return strings.Join(parts, "; ")
}

func costString(c uint64) string {
	if c == ^uint64(0) {
		return "unbounded"
	}
	return fmt.Sprintf("up to %d", c)
}

var _ definition.MatchedEventsReader = (*Env)(nil)

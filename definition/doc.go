// Package definition is the automation model: the JSON document a user authors, decoded once
// into a typed union of steps, and the rules that decide whether a document may be saved.
//
// A definition names a trigger event (with an optional CEL condition), the events that end an
// enrollment early, and a tree of steps. Each step object carries "id" and "type" plus the fields
// of its type, flat:
//
//	{"id": "pause", "type": "delay", "duration": "24h"}
//
// Decoding is strict and explains itself: [Parse] names every unknown field, wrong type and
// unknown step type with an RFC 6901 JSON pointer, and [Validate] adds the semantic rules (names,
// durations, limits, unique step ids, and every CEL expression through an [ExpressionChecker]).
// [Load] runs both, which is what an API that saves automations wants.
//
// The package is pure and imports only the standard library so that the API, the store and the
// deterministic workflow interpreter can all depend on it. Everything the interpreter ranges over
// has a deterministic order: steps are slices, and maps of CEL values expose sorted keys.
package definition

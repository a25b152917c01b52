package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/signalbox/signalbox/store"
)

// MaxBatchEvents is the most events one batch may carry.
const MaxBatchEvents = 1000

// ItemError is a FieldError of one item of a batch.
type ItemError struct {
	Index int `json:"index"`
	FieldError
}

// Batch is a decoded batch: the valid events, where each came from, and
// what was wrong with the rest.
type Batch struct {
	Events []store.EventInput
	// Index[i] is the position of Events[i] in the request.
	Index  []int
	Errors []ItemError
	// Size is the number of items in the request.
	Size int
}

// DecodeBatch decodes {"events":[...]}. A body that is not a batch at all
// (not JSON, not that shape, no items or too many) is refused whole with
// ErrMalformed or a FieldError; otherwise each item is validated on its own
// and invalid ones are reported in Batch.Errors.
func DecodeBatch(data []byte, now time.Time) (Batch, error) {
	if !utf8.Valid(data) {
		return Batch{}, fmt.Errorf("%w: not UTF-8", ErrMalformed)
	}
	// One pass both checks the syntax of the whole body and splits it.
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Batch{}, ErrMalformed
		}
		return Batch{}, FieldError{Code: CodeType, Detail: "a batch must be a JSON object"}
	}
	for key := range members {
		if key != "events" {
			return Batch{}, FieldError{Field: key, Code: CodeUnknownField, Detail: "unknown field"}
		}
	}
	raw, ok := members["events"]
	if !ok || isNull(raw) {
		return Batch{}, FieldError{Field: "events", Code: CodeRequired, Detail: "events is required"}
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return Batch{}, FieldError{Field: "events", Code: CodeType, Detail: "events must be an array"}
	}
	if len(items) == 0 || len(items) > MaxBatchEvents {
		return Batch{}, FieldError{Field: "events", Code: CodeInvalid,
			Detail: fmt.Sprintf("events must hold 1 to %d items, not %d", MaxBatchEvents, len(items))}
	}
	// Items decode independently, so large batches use every core; the
	// results keep the request's order.
	decoded := make([]store.EventInput, len(items))
	problems := make([][]FieldError, len(items))
	workers := 1
	if len(items) >= 64 {
		workers = runtime.GOMAXPROCS(0)
	}
	var wg sync.WaitGroup
	chunk := (len(items) + workers - 1) / workers
	for w := range workers {
		lo, hi := w*chunk, min((w+1)*chunk, len(items))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				decoded[i], problems[i] = decodeEvent(items[i], now)
			}
		}()
	}
	wg.Wait()
	b := Batch{Size: len(items)}
	for i := range items {
		if len(problems[i]) > 0 {
			for _, e := range problems[i] {
				b.Errors = append(b.Errors, ItemError{Index: i, FieldError: e})
			}
			continue
		}
		b.Events = append(b.Events, decoded[i])
		b.Index = append(b.Index, i)
	}
	return b, nil
}

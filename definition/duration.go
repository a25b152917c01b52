package definition

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// MaxDuration is the longest delay or wait timeout. Longer waits are better modelled as a
// new automation triggered later than as a workflow that sleeps for years.
const MaxDuration = 365 * 24 * time.Hour

// Duration is a length of time as written in a definition, such as "90s", "72h" or "1d12h".
// It keeps its original text so that a definition marshals back exactly as the author wrote it.
// The zero value means "not set".
type Duration struct {
	d    time.Duration
	text string
}

// NewDuration returns d as a Duration, written the way time.Duration.String writes it.
func NewDuration(d time.Duration) Duration {
	return Duration{d: d, text: d.String()}
}

// ParseDuration parses what time.ParseDuration accepts plus a "d" unit of 24 hours, in any
// combination ("7d", "1d12h", "1.5d"). Signs are refused: a duration in a definition is always a
// wait forward in time. Whether the value is in range is Validate's concern, not ParseDuration's.
func ParseDuration(s string) (Duration, error) {
	if s == "" {
		return Duration{}, errors.New("invalid duration \"\": use a number and a unit, such as 30m, 72h or 7d")
	}
	var total time.Duration
	for rest := s; rest != ""; {
		n := 0
		for n < len(rest) && isNumberByte(rest[n]) {
			n++
		}
		u := n
		for u < len(rest) && !isNumberByte(rest[u]) {
			u++
		}
		number, unit := rest[:n], rest[n:u]
		rest = rest[u:]
		if number == "" || unit == "" {
			return Duration{}, fmt.Errorf("invalid duration %q: use a number and a unit, such as 30m, 72h or 7d", s)
		}
		part, err := durationPart(number, unit)
		if err != nil {
			return Duration{}, fmt.Errorf("invalid duration %q: %w", s, err)
		}
		if total > math.MaxInt64-part {
			return Duration{}, fmt.Errorf("invalid duration %q: too long", s)
		}
		total += part
	}
	return Duration{d: total, text: s}, nil
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '.'
}

// durationPart converts one number-and-unit component, delegating everything but days to the
// standard library so that the accepted syntax is exactly Go's.
func durationPart(number, unit string) (time.Duration, error) {
	switch unit {
	case "d":
		hours, err := time.ParseDuration(number + "h")
		if err != nil {
			return 0, fmt.Errorf("bad number %q", number)
		}
		if hours > math.MaxInt64/24 {
			return 0, errors.New("too long")
		}
		return hours * 24, nil
	case "ns", "us", "µs", "μs", "ms", "s", "m", "h":
		d, err := time.ParseDuration(number + unit)
		if err != nil {
			return 0, fmt.Errorf("bad number %q", number)
		}
		return d, nil
	default:
		return 0, fmt.Errorf("unknown unit %q; use s, m, h or d", unit)
	}
}

// Std returns the duration as a time.Duration.
func (d Duration) Std() time.Duration {
	return d.d
}

// IsZero reports whether the duration is unset or zero.
func (d Duration) IsZero() bool {
	return d.d == 0
}

// String returns the text the duration was written as.
func (d Duration) String() string {
	if d.text == "" {
		return d.d.String()
	}
	return d.text
}

// MarshalJSON writes the original text as a JSON string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.String())
}

// UnmarshalJSON reads a JSON string with ParseDuration.
func (d *Duration) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("duration must be a JSON string: %w", err)
	}
	parsed, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = parsed
	return nil
}

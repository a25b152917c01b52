package definition

import (
	"encoding/json"
	"time"
)

// Limits is an automation's flow control: how many enrollments it starts in
// a sliding window, overall and per contact, and what happens to a
// triggering event over a limit.
type Limits struct {
	// MaxEnrollments bounds the enrollments of the automation per window.
	MaxEnrollments *Limit `json:"max_enrollments,omitempty"`
	// PerContact bounds one contact's enrollments per window.
	PerContact *Limit `json:"per_contact,omitempty"`
	// OnLimit is OnLimitSkip (the default) or OnLimitQueue.
	OnLimit string `json:"on_limit,omitempty"`
}

// Limit is at most Count enrollments in any window of Per.
type Limit struct {
	Count int      `json:"count"`
	Per   Duration `json:"per"`
}

// What happens to an event over a limit.
const (
	// OnLimitSkip records the event's decision as rate_limited and starts
	// nothing.
	OnLimitSkip = "skip"
	// OnLimitQueue keeps the enrollment and starts it, in order, when the
	// window allows.
	OnLimitQueue = "queue"
)

// Bounds of a limit.
const (
	MaxLimitCount = 1_000_000
	MinLimitPer   = time.Second
)

// Of returns the limit of that name ("max_enrollments" or "per_contact").
func (l *Limits) Of(name string) Limit {
	if name == "per_contact" && l.PerContact != nil {
		return *l.PerContact
	}
	if l.MaxEnrollments != nil {
		return *l.MaxEnrollments
	}
	return Limit{}
}

// Queues reports whether events over a limit wait for room.
func (l *Limits) Queues() bool { return l != nil && l.OnLimit == OnLimitQueue }

func (d *decoder) limits(at pointer, raw json.RawMessage) *Limits {
	l := &Limits{}
	if members, ok := d.members(at, raw); ok {
		d.apply(at, members, fieldSet{
			"max_enrollments": func(p pointer, v json.RawMessage) { l.MaxEnrollments = d.limit(p, v) },
			"per_contact":     func(p pointer, v json.RawMessage) { l.PerContact = d.limit(p, v) },
			"on_limit":        func(p pointer, v json.RawMessage) { l.OnLimit = d.str(p, v) },
		})
	}
	return l
}

func (d *decoder) limit(at pointer, raw json.RawMessage) *Limit {
	l := &Limit{}
	if members, ok := d.members(at, raw); ok {
		d.apply(at, members, fieldSet{
			"count": func(p pointer, v json.RawMessage) {
				if err := json.Unmarshal(v, &l.Count); err != nil {
					d.add(p, "must be a whole number")
				}
			},
			"per": func(p pointer, v json.RawMessage) { l.Per = d.duration(p, v) },
		})
	}
	return l
}

func (v *validator) limits(l *Limits) {
	if l == nil {
		return
	}
	if l.MaxEnrollments == nil && l.PerContact == nil {
		v.add("/limits", "set max_enrollments, per_contact or both")
	}
	for name, lim := range map[string]*Limit{"max_enrollments": l.MaxEnrollments, "per_contact": l.PerContact} {
		if lim == nil {
			continue
		}
		at := pointer("/limits").key(name)
		if lim.Count < 1 || lim.Count > MaxLimitCount {
			v.add(at.key("count"), "must be 1 to %d", MaxLimitCount)
		}
		v.duration(at.key("per"), lim.Per)
		if lim.Per.Std() > 0 && lim.Per.Std() < MinLimitPer {
			v.add(at.key("per"), "must be at least 1s")
		}
	}
	switch l.OnLimit {
	case "", OnLimitSkip, OnLimitQueue:
	default:
		v.add("/limits/on_limit", `must be "skip" or "queue"`)
	}
}

package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/store"
)

// render evaluates each value expression of m against vars, in key order.
func (a *Activities) render(ctx context.Context, m definition.ExprMap, vars conditions.Vars) (map[string]any, error) {
	out := make(map[string]any, len(m))
	for _, k := range m.Keys() {
		v, err := a.value(ctx, m[k], vars)
		if err != nil {
			// Temporal reads retryability off the top-level error only.
			return nil, permanent(ErrTypeInvalid, fmt.Errorf("%s: %w", k, err))
		}
		out[k] = v
	}
	return out, nil
}

// value evaluates one value expression. Failing to evaluate is permanent:
// the same expression over the same data fails again.
func (a *Activities) value(ctx context.Context, expr string, vars conditions.Vars) (any, error) {
	prog, err := a.Env.Compile(expr, conditions.KindValue)
	if err != nil {
		return nil, permanent(ErrTypeInvalid, err)
	}
	v, err := prog.EvalValue(ctx, vars)
	if err != nil {
		return nil, permanent(ErrTypeInvalid, err)
	}
	return v, nil
}

// text evaluates an expression that must yield a string.
func (a *Activities) text(ctx context.Context, field, expr string, vars conditions.Vars) (string, error) {
	if expr == "" {
		return "", nil
	}
	v, err := a.value(ctx, expr, vars)
	if err != nil {
		return "", permanent(ErrTypeInvalid, fmt.Errorf("%s: %w", field, err))
	}
	s, ok := v.(string)
	if !ok {
		return "", permanent(ErrTypeInvalid, fmt.Errorf("%s: expression %q yields %T, not a string", field, expr, v))
	}
	return s, nil
}

// UpdateContactInput is an update_contact step.
type UpdateContactInput struct {
	Scope  Scope                        `json:"scope"`
	StepID string                       `json:"step_id"`
	Step   definition.UpdateContactStep `json:"step"`
}

// UpdateContactResult lists what was set.
type UpdateContactResult struct {
	Properties map[string]any `json:"properties,omitempty"`
	FirstName  *string        `json:"first_name,omitempty"`
	LastName   *string        `json:"last_name,omitempty"`
}

// UpdateContact patches the enrolled contact. Setting values is idempotent,
// so a retry writes the same values again.
func (a *Activities) UpdateContact(ctx context.Context, in UpdateContactInput) (UpdateContactResult, error) {
	ws, _, contactID, err := in.Scope.ids()
	if err != nil {
		return UpdateContactResult{}, permanent(ErrTypeInvalid, err)
	}
	vars, err := a.vars(ctx, in.Scope)
	if err != nil {
		return UpdateContactResult{}, err
	}
	var res UpdateContactResult
	patch := store.ContactPatch{}
	if len(in.Step.Properties) > 0 {
		if res.Properties, err = a.render(ctx, in.Step.Properties, vars); err != nil {
			return res, err
		}
		if patch.Set, err = json.Marshal(res.Properties); err != nil {
			return res, permanent(ErrTypeInvalid, err)
		}
	}
	for _, f := range []struct {
		name, expr string
		dst        **string
	}{{"first_name", in.Step.FirstName, &res.FirstName}, {"last_name", in.Step.LastName, &res.LastName}} {
		if f.expr == "" {
			continue
		}
		s, err := a.text(ctx, f.name, f.expr, vars)
		if err != nil {
			return res, err
		}
		if strings.ContainsRune(s, 0) || len(s) > 255 {
			return res, permanent(ErrTypeInvalid, fmt.Errorf("%s: value is not a valid name", f.name))
		}
		*f.dst = &s
	}
	patch.FirstName, patch.LastName = res.FirstName, res.LastName
	if _, err := a.Store.PatchContact(ctx, ws, contactID, patch); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return res, permanent(ErrTypeNotFound, fmt.Errorf("contact %s no longer exists", contactID))
		}
		return res, err
	}
	return res, nil
}

// EmitEventInput is an emit_event step.
type EmitEventInput struct {
	Scope  Scope                    `json:"scope"`
	StepID string                   `json:"step_id"`
	Step   definition.EmitEventStep `json:"step"`
}

// EmitEventResult names the recorded event.
type EmitEventResult struct {
	EventID   string `json:"event_id"`
	Duplicate bool   `json:"duplicate"`
	Triggered int    `json:"triggered"`
	Resumed   int    `json:"resumed"`
	Exited    int    `json:"exited"`
}

// EmitEvent records an event for the enrolled contact through the record
// path, so it can trigger, resume and exit enrollments like any other. Its
// external_id is the workflow and step, which makes a retry a duplicate
// rather than a second event. Its depth is one more than the trigger's;
// see store.MaxEmitDepth.
func (a *Activities) EmitEvent(ctx context.Context, in EmitEventInput) (EmitEventResult, error) {
	ws, _, contactID, err := in.Scope.ids()
	if err != nil {
		return EmitEventResult{}, permanent(ErrTypeInvalid, err)
	}
	vars, err := a.vars(ctx, in.Scope)
	if err != nil {
		return EmitEventResult{}, err
	}
	props, err := a.render(ctx, in.Step.Properties, vars)
	if err != nil {
		return EmitEventResult{}, err
	}
	raw, err := json.Marshal(props)
	if err != nil {
		return EmitEventResult{}, permanent(ErrTypeInvalid, err)
	}
	ws2, err := a.Store.GetWorkspace(ctx, ws)
	if err != nil {
		return EmitEventResult{}, err
	}
	extID := in.Scope.WorkflowID + "/" + in.StepID
	if len(extID) > 255 {
		extID = extID[len(extID)-255:]
	}
	out, err := a.Recorder.Record(ctx, &store.RecordRequest{WorkspaceID: ws, Plan: ws2.Plan, Events: []store.EventInput{{
		ContactID: contactID, Name: in.Step.Name, Properties: raw, ExternalID: extID,
		OccurredAt: vars.Now, EmitDepth: in.Scope.Trigger.Depth + 1,
	}}})
	var qe *store.QuotaError
	if errors.As(err, &qe) {
		return EmitEventResult{}, permanent(ErrTypeRejected, err)
	}
	if err != nil {
		return EmitEventResult{}, err
	}
	r := out.Results[0]
	if errors.Is(r.Err, store.ErrContactNotFound) {
		return EmitEventResult{}, permanent(ErrTypeNotFound, fmt.Errorf("contact %s no longer exists", contactID))
	}
	return EmitEventResult{EventID: r.EventID.String(), Duplicate: r.Duplicate, Triggered: r.Triggered,
		Resumed: r.Resumed, Exited: r.Exited}, nil
}

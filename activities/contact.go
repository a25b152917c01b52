package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/ingest"
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
	// Book asks the activity to do the step's bookkeeping once done.
	Book *Bookkeeping `json:"book,omitempty"`
}

// UpdateContactResult lists what was set.
type UpdateContactResult struct {
	Booking
	Properties map[string]any `json:"properties,omitempty"`
	FirstName  *string        `json:"first_name,omitempty"`
	LastName   *string        `json:"last_name,omitempty"`
}

// updateContact patches the enrolled contact, once per enrollment step:
// the values are computed from the contact as it is when the patch is
// applied (store.UpdateContactOnce: a compare-and-swap, or the row lock),
// and the effect is recorded in the same statement, so a retry whose first
// attempt's result was lost (contact.properties.visits + 1) changes nothing
// and answers the first attempt's result. The patch passes ingest's checks
// for contact properties (size, depth, NUL, names); a violation fails the
// step for good.
func (a *Activities) updateContact(ctx context.Context, in UpdateContactInput) (UpdateContactResult, error) {
	ws, contactID := in.Scope.WorkspaceID, in.Scope.ContactID
	var res UpdateContactResult
	// The bookkeeping goes into the statement that applies the patch.
	var book *store.StepBook
	if in.Book != nil {
		b := in.Book.step()
		book = &b
	}
	eff, err := a.Store.UpdateContactOnce(ctx, ws, contactID, in.Scope.WorkflowID, in.StepID, book,
		func(c store.Contact) (store.ContactPatch, json.RawMessage, error) {
			vars := a.stepVars(in.Scope, c)
			patch, err := a.contactPatch(ctx, in.Step, vars, &res)
			if err != nil {
				return store.ContactPatch{}, nil, err
			}
			out, err := json.Marshal(res)
			if err != nil {
				return store.ContactPatch{}, nil, permanent(ErrTypeInvalid, err)
			}
			return patch, out, nil
		})
	if errors.Is(err, store.ErrNotFound) {
		return res, permanent(ErrTypeNotFound, fmt.Errorf("contact %s no longer exists", contactID))
	}
	if err != nil {
		return res, keepPermanent(err)
	}
	if eff.Repeat {
		res = UpdateContactResult{}
		if err := json.Unmarshal(eff.Result, &res); err != nil {
			return res, permanent(ErrTypeInvalid, err)
		}
	}
	if eff.Booked {
		res.Booked = &Booked{Status: eff.Status}
	}
	return res, nil
}

// contactPatch renders an update_contact step into a patch, through the
// same checks as an event's contact_properties.
func (a *Activities) contactPatch(ctx context.Context, step definition.UpdateContactStep, vars conditions.Vars,
	res *UpdateContactResult) (store.ContactPatch, error) {
	doc := map[string]any{}
	if len(step.Properties) > 0 {
		props, err := a.render(ctx, step.Properties, vars)
		if err != nil {
			return store.ContactPatch{}, err
		}
		res.Properties = props
		for k, v := range props {
			doc[k] = v
		}
	}
	for _, f := range []struct {
		name, expr string
		dst        **string
	}{{"first_name", step.FirstName, &res.FirstName}, {"last_name", step.LastName, &res.LastName}} {
		if f.expr == "" {
			continue
		}
		s, err := a.text(ctx, f.name, f.expr, vars)
		if err != nil {
			return store.ContactPatch{}, err
		}
		*f.dst = &s
		doc[f.name] = s
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return store.ContactPatch{}, permanent(ErrTypeInvalid, err)
	}
	patch, problems := ingest.DecodeContactProperties(raw)
	if len(problems) > 0 {
		return store.ContactPatch{}, permanent(ErrTypeInvalid, fmt.Errorf("update_contact: %w", problems[0]))
	}
	return *patch, nil
}

// EmitEventInput is an emit_event step.
type EmitEventInput struct {
	Scope  Scope                    `json:"scope"`
	StepID string                   `json:"step_id"`
	Step   definition.EmitEventStep `json:"step"`
	// Book asks the activity to do the step's bookkeeping once done.
	Book *Bookkeeping `json:"book,omitempty"`
}

// EmitEventResult names the recorded event.
type EmitEventResult struct {
	Booking
	EventID   string `json:"event_id"`
	Duplicate bool   `json:"duplicate"`
	Triggered int    `json:"triggered"`
	Resumed   int    `json:"resumed"`
	Exited    int    `json:"exited"`
}

// emitEvent records an event for the enrolled contact through the record
// path, so it can trigger, resume and exit enrollments like any other. Its
// external_id is the workflow and step, which makes a retry a duplicate
// rather than a second event. Its depth is one more than the trigger's;
// see store.MaxEmitDepth.
func (a *Activities) emitEvent(ctx context.Context, in EmitEventInput) (EmitEventResult, error) {
	ws, contactID := in.Scope.WorkspaceID, in.Scope.ContactID
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
	// The same checks as an event sent to the API: a violation can only
	// repeat, so it fails the step for good.
	if detail := ingest.CheckEventName(in.Step.Name); detail != "" {
		return EmitEventResult{}, permanent(ErrTypeInvalid, fmt.Errorf("emit_event: name: %s", detail))
	}
	if fe := ingest.CheckProperties(raw); fe != nil {
		return EmitEventResult{}, permanent(ErrTypeInvalid, fmt.Errorf("emit_event: %w", fe))
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
	// The event catalog refused it (an undeclared name in a workspace that
	// refuses them, or a violation of an enforced schema): like any other
	// invalid emitted event, it can only be refused again.
	var se *store.SchemaError
	switch {
	case errors.Is(r.Err, store.ErrUndeclaredEvent):
		return EmitEventResult{}, permanent(ErrTypeInvalid,
			fmt.Errorf("emit_event: event name %q is not declared and the workspace refuses undeclared events", in.Step.Name))
	case errors.As(r.Err, &se):
		detail := ""
		if len(se.Violations) > 0 {
			v := se.Violations[0]
			detail = fmt.Sprintf(": %s: %s (%s)", v.Pointer, v.Detail, v.Keyword)
		}
		return EmitEventResult{}, permanent(ErrTypeInvalid, fmt.Errorf("emit_event: properties break schema version %d of %q%s",
			se.Version, se.Name, detail))
	}
	return EmitEventResult{EventID: r.EventID.String(), Duplicate: r.Duplicate, Triggered: r.Triggered,
		Resumed: r.Resumed, Exited: r.Exited}, nil
}

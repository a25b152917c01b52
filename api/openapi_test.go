package api

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/ingest"
	"github.com/signalbox/signalbox/source"
	"github.com/signalbox/signalbox/store"
)

// The OpenAPI tests need no database: the router is built over a nil store
// and never sent a request.

var oaMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// oaDoc parses the embedded document.
func oaDoc(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(OpenAPI, &doc), "openapi.yaml is not valid YAML")
	return doc
}

// oaObj and oaList read a decoded YAML node as a mapping or a sequence, failing
// the test when it is something else.
func oaObj(t *testing.T, v any, where string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	require.True(t, ok, "%s: want a mapping, got %T", where, v)
	return m
}

func oaList(t *testing.T, v any, where string) []any {
	t.Helper()
	l, ok := v.([]any)
	require.True(t, ok, "%s: want a sequence, got %T", where, v)
	return l
}

// oaPointer resolves a local JSON pointer ("#/components/schemas/Event").
func oaPointer(doc map[string]any, ref string) (any, bool) {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, false
	}
	var cur any = doc
	for _, tok := range strings.Split(rest, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[tok]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// oaDeref follows $ref until it reaches an object without one.
func oaDeref(t *testing.T, doc map[string]any, v any, where string) map[string]any {
	t.Helper()
	m := oaObj(t, v, where)
	for range 10 {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		target, found := oaPointer(doc, ref)
		require.True(t, found, "%s: $ref %q does not resolve", where, ref)
		m = oaObj(t, target, ref)
	}
	t.Fatalf("%s: $ref chain too long", where)
	return nil
}

// oaOperations lists every operation of the document by "METHOD /path".
func oaOperations(t *testing.T, doc map[string]any) map[string]map[string]any {
	t.Helper()
	ops := map[string]map[string]any{}
	for path, item := range oaObj(t, doc["paths"], "paths") {
		for method, op := range oaObj(t, item, path) {
			if slices.Contains(oaMethods, method) {
				ops[strings.ToUpper(method)+" "+path] = oaObj(t, op, method+" "+path)
			}
		}
	}
	return ops
}

var oaGinParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// TestOpenAPIMatchesRouter requires the document to describe exactly the
// routes the router registers.
func TestOpenAPIMatchesRouter(t *testing.T) {
	srv := New(Config{Logger: slog.New(slog.DiscardHandler), Metrics: http.NotFoundHandler()})
	engine, ok := srv.Handler().(*gin.Engine)
	require.True(t, ok, "Handler() is no longer a *gin.Engine")
	routes := map[string]bool{}
	for _, r := range engine.Routes() {
		routes[r.Method+" "+oaGinParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	// Sub-resources of an event type are served by the GET catch-all.
	for suffix := range srv.eventTypeSubroutes {
		routes["GET /v1/event-types/{name}/"+suffix] = true
	}
	require.NotEmpty(t, routes)
	ops := oaOperations(t, oaDoc(t))
	var undocumented, unrouted []string
	for route := range routes {
		if ops[route] == nil {
			undocumented = append(undocumented, route)
		}
	}
	for op := range ops {
		if !routes[op] {
			unrouted = append(unrouted, op)
		}
	}
	slices.Sort(undocumented)
	slices.Sort(unrouted)
	require.Empty(t, undocumented, "routes missing from api/openapi.yaml")
	require.Empty(t, unrouted, "api/openapi.yaml documents operations the router does not have")
}

// TestOpenAPIStructure checks what a generic validator would: the version,
// that every $ref resolves and every component is used, unique
// operationIds, path parameters, security, and responses.
func TestOpenAPIStructure(t *testing.T) {
	doc := oaDoc(t)
	require.Regexp(t, `^3\.1\.\d+$`, doc["openapi"])
	info := oaObj(t, doc["info"], "info")
	require.NotEmpty(t, info["title"])
	require.NotEmpty(t, info["version"])

	// Every $ref resolves; every component is referenced.
	refs := map[string]bool{}
	var walk func(v any, where string)
	walk = func(v any, where string) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"]; ok {
				s, isString := ref.(string)
				require.True(t, isString, "%s: $ref is not a string", where)
				_, found := oaPointer(doc, s)
				require.True(t, found, "%s: $ref %q does not resolve", where, s)
				refs[s] = true
			}
			for k, e := range v {
				walk(e, where+"/"+k)
			}
		case []any:
			for i, e := range v {
				walk(e, where+"/"+strconv.Itoa(i))
			}
		}
	}
	walk(doc, "#")
	components := oaObj(t, doc["components"], "components")
	schemes := oaObj(t, components["securitySchemes"], "components.securitySchemes")
	for kind, defs := range components {
		if kind == "securitySchemes" {
			continue // referenced by name, checked below
		}
		for name := range oaObj(t, defs, "components."+kind) {
			require.True(t, refs["#/components/"+kind+"/"+name], "components.%s.%s is never referenced", kind, name)
		}
	}

	declaredTags := map[string]bool{}
	for _, tag := range oaList(t, doc["tags"], "tags") {
		declaredTags[oaObj(t, tag, "tags")["name"].(string)] = true
	}
	checkSecurity := func(v any, where string) []any {
		reqs := oaList(t, v, where)
		for _, r := range reqs {
			for name := range oaObj(t, r, where) {
				require.Contains(t, schemes, name, "%s: unknown security scheme", where)
			}
		}
		return reqs
	}
	rootSecurity := checkSecurity(doc["security"], "security")

	ids := map[string]string{}
	paths := oaObj(t, doc["paths"], "paths")
	for key, op := range oaOperations(t, doc) {
		method, path, _ := strings.Cut(key, " ")
		id, _ := op["operationId"].(string)
		require.NotEmpty(t, id, "%s: no operationId", key)
		require.NotContains(t, ids, id, "%s: operationId %q is also %s's", key, id, ids[id])
		ids[id] = key
		require.NotEmpty(t, op["summary"], "%s: no summary", key)
		for _, tag := range oaList(t, op["tags"], key+" tags") {
			require.True(t, declaredTags[tag.(string)], "%s: tag %q is not declared", key, tag)
		}

		// Path parameters: exactly the template's, required.
		inPath := map[string]bool{}
		for _, params := range []any{oaObj(t, paths[path], path)["parameters"], op["parameters"]} {
			if params == nil {
				continue
			}
			seen := map[string]bool{}
			for _, p := range oaList(t, params, key+" parameters") {
				p := oaDeref(t, doc, p, key+" parameter")
				name, in := p["name"].(string), p["in"].(string)
				require.NotEmpty(t, name, "%s: a parameter has no name", key)
				require.Contains(t, []string{"path", "query", "header", "cookie"}, in, "%s: parameter %s", key, name)
				require.False(t, seen[in+" "+name], "%s: parameter %s %s listed twice", key, in, name)
				seen[in+" "+name] = true
				require.NotNil(t, p["schema"], "%s: parameter %s has no schema", key, name)
				if in == "path" {
					require.Equal(t, true, p["required"], "%s: path parameter %s must be required", key, name)
					inPath[name] = true
				}
			}
		}
		var template []string
		for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(path, -1) {
			template = append(template, m[1])
		}
		var declared []string
		for name := range inPath {
			declared = append(declared, name)
		}
		slices.Sort(template)
		slices.Sort(declared)
		require.Equal(t, template, declared, "%s: path parameters", key)

		// Request bodies of JSON, with their cap.
		if rb, ok := op["requestBody"]; ok {
			rb := oaDeref(t, doc, rb, key+" requestBody")
			require.Contains(t, oaObj(t, rb["content"], key+" requestBody content"), "application/json", key)
			require.NotNil(t, rb["x-max-body-bytes"], "%s: requestBody has no x-max-body-bytes", key)
		}
		require.False(t, method == "GET" && op["requestBody"] != nil, "%s: a GET with a body", key)

		// Responses: at least one 2xx, a 401 wherever a key is needed, and
		// problem documents for errors.
		security := rootSecurity
		if s, ok := op["security"]; ok {
			security = checkSecurity(s, key+" security")
		}
		responses := oaObj(t, op["responses"], key+" responses")
		var success bool
		for code, r := range responses {
			status, err := strconv.Atoi(code)
			require.NoError(t, err, "%s: response %q is not a status code", key, code)
			require.True(t, status >= 100 && status <= 599, "%s: response %d", key, status)
			success = success || status/100 == 2
			r := oaDeref(t, doc, r, fmt.Sprintf("%s %d", key, status))
			require.NotEmpty(t, r["description"], "%s %d: no description", key, status)
			if status == http.StatusNoContent {
				require.Nil(t, r["content"], "%s 204 has content", key)
			}
			if status >= 400 {
				content := oaObj(t, r["content"], fmt.Sprintf("%s %d content", key, status))
				require.Contains(t, content, "application/problem+json", "%s %d", key, status)
				require.Len(t, content, 1, "%s %d: errors are problem+json only", key, status)
			}
			oaCheckProblemExamples(t, doc, r, status, fmt.Sprintf("%s %d", key, status))
		}
		require.True(t, success, "%s: no 2xx response", key)
		if len(security) > 0 {
			require.Contains(t, responses, "401", "%s needs an API key but documents no 401", key)
			require.Contains(t, responses, "500", "%s: no 500", key)
		} else if op["x-signature-checked"] != true {
			// An inbound source's URL needs no key, but answers 401 to a
			// payload whose signature fails.
			require.NotContains(t, responses, "401", "%s needs no key but documents a 401", key)
		}
	}
}

// oaCheckProblemExamples requires each problem example of a response to be
// one the server could send with that status.
func oaCheckProblemExamples(t *testing.T, doc map[string]any, r map[string]any, status int, where string) {
	t.Helper()
	content, _ := r["content"].(map[string]any)
	media, ok := content["application/problem+json"]
	if !ok {
		return
	}
	m := oaObj(t, media, where)
	var examples []any
	if ex, ok := m["example"]; ok {
		examples = append(examples, ex)
	}
	if exs, ok := m["examples"]; ok {
		for name, ex := range oaObj(t, exs, where+" examples") {
			ex := oaDeref(t, doc, ex, where+" example "+name)
			examples = append(examples, ex["value"])
		}
	}
	require.NotEmpty(t, examples, "%s: a problem response without an example", where)
	for _, ex := range examples {
		p := oaObj(t, ex, where+" example")
		code, _ := p["code"].(string)
		require.NotEmpty(t, code, "%s: example has no code", where)
		require.Equal(t, problemTypeBase+code, p["type"], where)
		require.Equal(t, status, p["status"], where)
		require.Equal(t, http.StatusText(status), p["title"], where)
	}
}

// TestOpenAPILimitsMatchCode ties the limits the document states to the
// constants the server enforces.
func TestOpenAPILimitsMatchCode(t *testing.T) {
	doc := oaDoc(t)
	components := oaObj(t, doc["components"], "components")
	schemas := oaObj(t, components["schemas"], "schemas")
	params := oaObj(t, components["parameters"], "parameters")
	schema := func(name string) map[string]any { return oaObj(t, schemas[name], name) }
	prop := func(schemaName, name string) map[string]any {
		return oaObj(t, oaObj(t, schema(schemaName)["properties"], schemaName)[name], schemaName+"."+name)
	}
	strs := func(v any) []string {
		var out []string
		for _, e := range oaList(t, v, "enum") {
			out = append(out, e.(string))
		}
		return out
	}

	name := schema("EventName")
	require.Equal(t, ingest.MaxNameLen, name["maxLength"])
	pattern := regexp.MustCompile(name["pattern"].(string))
	for _, n := range []string{"a", "Z/b_c.d-e9", "purchase.completed", "a" + strings.Repeat("b", 254),
		"a" + strings.Repeat("b", 255), "1x", "_x", "a b", "a:b", "é", "aé", "a\n", ""} {
		valid := n != "" && ingest.CheckEventName(n) == ""
		require.Equal(t, valid, pattern.MatchString(n), "pattern and CheckEventName disagree on %q", n)
	}

	require.Equal(t, ingest.GoalTypes, strs(schema("GoalType")["enum"]))
	var plans []string
	for _, p := range store.Plans {
		plans = append(plans, string(p))
	}
	require.Equal(t, plans, strs(schema("Plan")["enum"]))

	require.Equal(t, ingest.MaxEmailLen, prop("EventInput", "email")["maxLength"])
	require.Equal(t, ingest.MaxContactNameLen, prop("EventInput", "contact_name")["maxLength"])
	require.Equal(t, ingest.MaxExternalIDLen, prop("EventInput", "external_id")["maxLength"])
	require.Equal(t, ingest.MaxContactNameLen, prop("ContactUpsert", "first_name")["maxLength"])
	require.Equal(t, ingest.MaxContactNameLen, prop("ContactPatch", "last_name")["maxLength"])
	require.Equal(t, ingest.MaxBatchEvents, prop("BatchInput", "events")["maxItems"])
	require.Equal(t, 1, prop("BatchInput", "events")["minItems"])

	limit := oaObj(t, oaObj(t, params["Limit"], "Limit")["schema"], "Limit.schema")
	require.Equal(t, maxLimit, limit["maximum"])
	require.Equal(t, defaultLimit, limit["default"])
	require.Equal(t, 1, limit["minimum"])

	// The answers that record events carry the usage warning.
	ops := oaOperations(t, doc)
	for key, code := range map[string]string{"POST /v1/events": "202", "POST /v1/events/batch": "200"} {
		r := oaDeref(t, doc, oaObj(t, ops[key]["responses"], key)[code], key)
		h := oaObj(t, r["headers"], key+" "+code+" headers")
		require.Equal(t, map[string]any{"$ref": "#/components/headers/UsageWarning"}, h[UsageWarningHeader], "%s %s", key, code)
	}

	caps := map[string]int{"ingestEvent": maxEventBody, "ingestBatch": maxBatchBody,
		"upsertContact": maxContactBody, "patchContact": maxContactBody, "createAutomation": maxAutomationBody,
		"validateAutomation": maxAutomationBody, "updateAutomation": maxAutomationBody,
		"exitEnrollment": maxControlBody, "disableAutomation": maxControlBody, "startBackfill": maxControlBody}
	for id, cap := range map[string]int{"createSource": maxSourceBody, "patchSource": maxSourceBody, "receiveDelivery": maxInboundBody} {
		caps[id] = cap
	}
	// The event catalog's bodies.
	caps["createEventType"], caps["patchEventType"] = maxEventTypeBody, maxEventTypeBody
	caps["declareEventTypes"], caps["patchWorkspace"] = maxDeclareBody, maxContactBody
	for _, id := range []string{"createSegment", "updateSegment", "previewSegment"} {
		caps[id] = maxSegmentBody
	}
	for key, op := range ops {
		rb, ok := op["requestBody"]
		if !ok {
			continue
		}
		id := op["operationId"].(string)
		want, ok := caps[id]
		require.True(t, ok, "%s: a request body whose cap this test does not know", key)
		require.Equal(t, want, oaDeref(t, doc, rb, key)["x-max-body-bytes"], "%s: x-max-body-bytes", key)
	}
	example413 := oaObj(t, oaObj(t, oaObj(t, oaObj(t, components["responses"], "responses")["BodyTooLarge"], "BodyTooLarge")["content"],
		"content")["application/problem+json"], "problem")["example"]
	require.Equal(t, tooLarge(maxEventBody).Detail, oaObj(t, example413, "example")["detail"])
	automation413 := oaObj(t, oaObj(t, oaObj(t, oaObj(t, components["responses"], "responses")["AutomationTooLarge"],
		"AutomationTooLarge")["content"], "content")["application/problem+json"], "problem")["example"]
	require.Equal(t, tooLarge(maxAutomationBody).Detail, oaObj(t, automation413, "example")["detail"])

	// A quota refusal says when the month turns.
	quota := oaObj(t, oaObj(t, components["responses"], "responses")["QuotaExceeded"], "QuotaExceeded")
	require.Equal(t, map[string]any{"$ref": "#/components/headers/RetryAfter"},
		oaObj(t, quota["headers"], "QuotaExceeded headers")["Retry-After"])
	// Recording answers a transient database failure with 503 and when to
	// retry.
	unavailable := oaObj(t, oaObj(t, components["responses"], "responses")["Unavailable"], "Unavailable")
	require.Equal(t, map[string]any{"$ref": "#/components/headers/RetryAfterUnavailable"},
		oaObj(t, unavailable["headers"], "Unavailable headers")["Retry-After"])
	retry := oaObj(t, oaObj(t, components["headers"], "headers")["RetryAfterUnavailable"], "RetryAfterUnavailable")
	require.EqualValues(t, unavailableRetry.Seconds(), retry["example"])
	for _, key := range []string{"POST /v1/events", "POST /v1/events/batch"} {
		require.Equal(t, map[string]any{"$ref": "#/components/responses/Unavailable"},
			oaObj(t, oaOperations(t, doc)[key]["responses"], key)["503"], "%s: no 503", key)
	}

	description := oaObj(t, doc["info"], "info")["description"].(string)
	for plan, want := range map[store.Plan]string{store.PlanStarter: "50,000", store.PlanGrowth: "250,000",
		store.PlanScale: "1,000,000"} {
		require.Contains(t, description, string(plan)+" "+want, "quota of %s", plan)
	}
	require.Equal(t, 250*time.Millisecond, DefaultQuotaPause)
	require.Contains(t, description, "after a pause\nof a quarter of a second")
}

// TestOpenAPIAutomationLimitsMatchCode ties the automation definition's
// schemas to the definition package.
func TestOpenAPIAutomationLimitsMatchCode(t *testing.T) {
	doc := oaDoc(t)
	schemas := oaObj(t, oaObj(t, doc["components"], "components")["schemas"], "schemas")
	schema := func(name string) map[string]any { return oaObj(t, schemas[name], name) }
	prop := func(schemaName, name string) map[string]any {
		return oaObj(t, oaObj(t, schema(schemaName)["properties"], schemaName)[name], schemaName+"."+name)
	}
	strs := func(v any) []string {
		var out []string
		for _, e := range oaList(t, v, "enum") {
			out = append(out, e.(string))
		}
		return out
	}

	require.Equal(t, definition.MaxDocumentSize, maxAutomationBody)
	require.Equal(t, definition.MaxNameLength, prop("AutomationDefinition", "name")["maxLength"])
	require.Equal(t, definition.MaxExitEvents, prop("AutomationDefinition", "exit_on")["maxItems"])
	require.Equal(t, definition.MaxSteps, schema("StepList")["maxItems"])
	require.Equal(t, definition.MaxMapEntries, schema("CelValueMap")["maxProperties"])
	require.Equal(t, definition.MaxMapEntries, prop("WebhookStep", "headers")["maxProperties"])
	require.Equal(t, conditions.DefaultMaxExpressionLength, schema("CelCondition")["maxLength"])
	require.Equal(t, conditions.DefaultMaxExpressionLength, schema("CelValue")["maxLength"])
	require.Equal(t, definition.MaxEventNameLength, schema("EventName")["maxLength"])
	eventName := regexp.MustCompile(schema("EventName")["pattern"].(string))
	for _, n := range []string{"a", "Z/b_c.d-e9", "a" + strings.Repeat("b", 254), "a" + strings.Repeat("b", 255),
		"1x", "_x", "a b", "a:b", "é", "aé", ""} {
		require.Equal(t, definition.CheckEventName(n) == nil, eventName.MatchString(n),
			"pattern and definition.CheckEventName disagree on %q", n)
	}

	// One schema per step type, discriminated by type.
	var types []string
	for _, st := range definition.StepTypes {
		types = append(types, string(st))
	}
	step := schema("Step")
	require.Len(t, oaList(t, step["oneOf"], "Step.oneOf"), len(types))
	mapping := oaObj(t, oaObj(t, step["discriminator"], "discriminator")["mapping"], "mapping")
	require.Len(t, mapping, len(types))
	for _, typ := range types {
		ref, ok := mapping[typ].(string)
		require.True(t, ok, "no step schema for %s", typ)
		target, found := oaPointer(doc, ref)
		require.True(t, found, ref)
		typeProp := oaObj(t, oaObj(t, oaObj(t, target, ref)["properties"], ref)["type"], ref+" type")
		require.Equal(t, typ, typeProp["const"], ref)
	}
	require.Equal(t, types, strs(prop("StepRecord", "type")["enum"]))
	require.Equal(t, []string{store.EnrollmentActive, store.EnrollmentCompleted, store.EnrollmentExited,
		store.EnrollmentFailed}, strs(prop("Enrollment", "status")["enum"]))

	// The duration and step id patterns accept what the decoder does.
	duration := regexp.MustCompile(schema("Duration")["pattern"].(string))
	for _, d := range []string{"90s", "30m", "72h", "7d", "1d12h", "1.5d", ".5h", "5.h", "100ms", "3us", "3µs",
		"0s", "", "7", "d", "-5s", "+5s", "5 s", "2w", "1h-30m", "1..5h", "1.5.5h", "h5"} {
		_, err := definition.ParseDuration(d)
		require.Equal(t, err == nil, duration.MatchString(d), "pattern and ParseDuration disagree on %q", d)
	}
	stepID := regexp.MustCompile(schema("StepID")["pattern"].(string))
	for _, id := range []string{"a", "pause", "Send-welcome_1", "9", strings.Repeat("x", 64), strings.Repeat("x", 65),
		"", "a b", "a.b", "é", "a/b"} {
		idJSON, err := json.Marshal(id)
		require.NoError(t, err)
		doc := `{"name":"n","trigger":{"event":"e"},"steps":[{"id":` + string(idJSON) + `,"type":"delay","duration":"1s"}]}`
		_, problems := definition.Load([]byte(doc), nil)
		require.Equal(t, len(problems) == 0, stepID.MatchString(id), "pattern and the decoder disagree on step id %q: %v", id, problems)
	}
}

// TestOpenAPIExamplesDecode feeds the document's request examples to the
// decoders the handlers use: every example must be accepted as documented.
func TestOpenAPIExamplesDecode(t *testing.T) {
	doc := oaDoc(t)
	ops := map[string]map[string]any{}
	for _, op := range oaOperations(t, doc) {
		ops[op["operationId"].(string)] = op
	}
	examples := func(id string) []json.RawMessage {
		rb := oaDeref(t, doc, ops[id]["requestBody"], id)
		media := oaObj(t, oaObj(t, rb["content"], id)["application/json"], id)
		var out []json.RawMessage
		add := func(v any) {
			b, err := json.Marshal(v)
			require.NoError(t, err)
			out = append(out, b)
		}
		if ex, ok := media["example"]; ok {
			add(ex)
		}
		if exs, ok := media["examples"].(map[string]any); ok {
			for name, ex := range exs {
				add(oaDeref(t, doc, ex, id+" "+name)["value"])
			}
		}
		require.NotEmpty(t, out, "%s: no request example", id)
		return out
	}
	now := time.Date(2026, 3, 1, 12, 0, 1, 0, time.UTC)
	for _, ex := range examples("ingestEvent") {
		_, errs, err := ingest.DecodeEvent(ex, now)
		require.NoError(t, err, "%s", ex)
		require.Empty(t, errs, "%s", ex)
	}
	for _, ex := range examples("ingestBatch") {
		b, err := ingest.DecodeBatch(ex, now)
		require.NoError(t, err, "%s", ex)
		require.Empty(t, b.Errors, "%s", ex)
	}
	for _, ex := range examples("upsertContact") {
		_, errs, err := ingest.DecodeContact(ex, true)
		require.NoError(t, err, "%s", ex)
		require.Empty(t, errs, "%s", ex)
	}
	for _, id := range []string{"createSource", "patchSource"} {
		for _, ex := range examples(id) {
			base := source.NewInput()
			if id == "patchSource" {
				base.Name, base.Definition.EmailPath, base.Definition.EventName = "s", "email", "x"
			}
			_, errs, err := source.Decode(ex, base)
			require.NoError(t, err, "%s", ex)
			require.Empty(t, errs, "%s: %s", id, ex)
		}
	}
	for _, ex := range examples("patchContact") {
		_, errs, err := ingest.DecodeContact(ex, false)
		require.NoError(t, err, "%s", ex)
		require.Empty(t, errs, "%s", ex)
	}

	// Automation definitions validate, structure and CEL alike, and the
	// definitions the answers show are their normalised forms.
	env, err := conditions.NewEnv(conditions.Config{})
	require.NoError(t, err)
	var normalised []any
	for _, id := range []string{"createAutomation", "validateAutomation", "updateAutomation"} {
		for _, ex := range examples(id) {
			_, problems := definition.Load(ex, nil)
			require.Empty(t, problems, "%s: %s", id, ex)
			a, problems := definition.Load(ex, env)
			require.Empty(t, problems, "%s: %s", id, ex)
			canonical, err := json.Marshal(a)
			require.NoError(t, err)
			var v any
			require.NoError(t, json.Unmarshal(canonical, &v))
			normalised = append(normalised, v)
		}
	}
	responseDefinition := func(id, code string) any {
		r := oaDeref(t, doc, oaObj(t, ops[id]["responses"], id)[code], id+" "+code)
		media := oaObj(t, oaObj(t, r["content"], id+" content")["application/json"], id+" json")
		b, err := json.Marshal(oaObj(t, media["example"], id+" example")["definition"])
		require.NoError(t, err)
		var v any
		require.NoError(t, json.Unmarshal(b, &v))
		return v
	}
	for _, v := range normalised {
		require.Equal(t, v, responseDefinition("createAutomation", "201"))
		require.Equal(t, v, responseDefinition("validateAutomation", "200"))
	}
}

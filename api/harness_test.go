package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/api"
	"github.com/signalbox/signalbox/catalog"
	"github.com/signalbox/signalbox/ingest"
	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
	"github.com/signalbox/signalbox/telemetry"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// harness is a real API server over HTTP on the test database.
type harness struct {
	t     *testing.T
	url   string
	store *store.Store
}

type harnessOption func(*api.Config)

func newHarness(t *testing.T, opts ...harnessOption) *harness {
	t.Helper()
	return newHarnessOn(t, storetest.New(t, store.Config{}), opts...)
}

// newHarnessOn is a harness on a store of the test's own making.
func newHarnessOn(t *testing.T, st *store.Store, opts ...harnessOption) *harness {
	t.Helper()
	cat := catalog.New(st, 0, nil)
	rec := ingest.NewRecorder(st, ingest.RecorderConfig{Catalog: cat})
	t.Cleanup(rec.Close)
	tel, err := telemetry.Setup(context.Background(), "signalbox-test", false)
	require.NoError(t, err)
	cfg := api.Config{Store: st, Recorder: rec, Logger: slog.New(slog.DiscardHandler), Metrics: tel.Metrics, Meter: tel.Meter,
		Catalog: cat}
	for _, o := range opts {
		o(&cfg)
	}
	srv := httptest.NewServer(api.New(cfg).Handler())
	t.Cleanup(srv.Close)
	return &harness{t: t, url: srv.URL, store: st}
}

// workspace makes a workspace and returns a client authenticated for it.
func (h *harness) workspace(plan store.Plan) *client {
	h.t.Helper()
	ws, key := storetest.Workspace(h.t, h.store, plan)
	return &client{h: h, key: key, ws: ws}
}

type client struct {
	h   *harness
	key string
	ws  store.Workspace
}

// response is a decoded answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic map.
func (r response) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &m), "body: %s", r.Body)
	return m
}

// do sends a request; body may be nil, a string (sent as is) or a value
// (sent as JSON).
func (c *client) do(method, path string, body any) response {
	t := c.h.t
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.h.url+path, rd)
	require.NoError(t, err)
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// expect sends a request and requires the status, returning the decoded body.
func (c *client) expect(status int, method, path string, body any) map[string]any {
	c.h.t.Helper()
	r := c.do(method, path, body)
	require.Equal(c.h.t, status, r.Status, "%s %s: %s", method, path, r.Body)
	if len(r.Body) == 0 {
		return nil
	}
	return r.JSON(c.h.t)
}

// problem requires a problem+json answer with this status and code, and
// returns the fields its errors name.
func (c *client) problem(status int, code, method, path string, body any) []string {
	t := c.h.t
	t.Helper()
	r := c.do(method, path, body)
	require.Equal(t, status, r.Status, "%s %s: %s", method, path, r.Body)
	require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
	p := r.JSON(t)
	require.Equal(t, code, p["code"], "body: %s", r.Body)
	require.Equal(t, "urn:signalbox:problem:"+code, p["type"])
	require.EqualValues(t, status, p["status"])
	require.NotEmpty(t, p["title"])
	var fields []string
	if errs, ok := p["errors"].([]any); ok {
		for _, e := range errs {
			fields = append(fields, e.(map[string]any)["field"].(string))
		}
	}
	return fields
}

// event sends one event that must be accepted.
func (c *client) event(body map[string]any) map[string]any {
	c.h.t.Helper()
	return c.expect(http.StatusAccepted, "POST", "/v1/events", body)
}

// list reads every page of a listing with the given page size.
func (c *client) list(path string, limit int) []map[string]any {
	t := c.h.t
	t.Helper()
	var all []map[string]any
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	cursor := ""
	for range 1000 {
		p := path + sep + "limit=" + strconv.Itoa(limit)
		if cursor != "" {
			p += "&cursor=" + cursor
		}
		page := c.expect(http.StatusOK, "GET", p, nil)
		data := page["data"].([]any)
		require.LessOrEqual(t, len(data), limit)
		for _, d := range data {
			all = append(all, d.(map[string]any))
		}
		next, _ := page["next_cursor"].(string)
		if next == "" {
			return all
		}
		cursor = next
	}
	t.Fatal("listing never ended")
	return nil
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

package activities

import (
	"context"
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/event"
	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
)

// TestMain is the package's only one: the tests share a migrated database
// that it drops at the end.
func TestMain(m *testing.M) {
	storetest.Main(m)
}

// fixture is a workspace with one contact, and an enrollment scope for it.
type fixture struct {
	st      *store.Store
	env     *conditions.Env
	scope   Scope
	contact store.Contact
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	st := storetest.New(t, store.Config{})
	ws, _ := storetest.Workspace(t, st, store.PlanStarter)
	first := "Ada"
	c, _, err := st.UpsertContact(context.Background(), ws.ID, "ada@example.com", store.ContactPatch{FirstName: &first})
	require.NoError(t, err)
	env, err := conditions.NewEnv(conditions.Config{})
	require.NoError(t, err)
	return fixture{st: st, env: env, contact: c, scope: Scope{
		WorkspaceID:  ws.ID,
		EnrollmentID: store.NewID(),
		ContactID:    c.ID,
		WorkflowID:   "enrollment/" + uuid.NewString(),
		Trigger: event.Event{ID: store.NewID(), Name: "order.placed",
			Properties: json.RawMessage(`{"orderId":"ord_42","total":99.5}`), OccurredAt: time.Now().UTC()},
	}}
}

// run executes an activity the way a worker would, through the SDK's test
// environment, so errors arrive as Temporal converts them.
func run[In, Out any](t *testing.T, fn func(context.Context, In) (Out, error), in In) (Out, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	// Expected failures would otherwise be logged at error level.
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(fn)
	var out Out
	val, err := env.ExecuteActivity(fn, in)
	if err == nil {
		require.NoError(t, val.Get(&out))
	}
	return out, err
}

// requireRetryable asserts err is a failure Temporal retries.
func requireRetryable(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		require.False(t, app.NonRetryable(), "want a retryable error, got %v", err)
	}
}

// requirePermanent asserts err is a non-retryable failure of the given type.
func requirePermanent(t *testing.T, err error, errType string) {
	t.Helper()
	require.Error(t, err)
	require.True(t, temporal.IsApplicationError(err), "got %T %v", err, err)
	var app *temporal.ApplicationError
	require.True(t, errors.As(err, &app))
	require.True(t, app.NonRetryable(), "want a non-retryable error, got %v", err)
	require.Equal(t, errType, app.Type(), "%v", err)
}

// receiver records the webhooks it gets and answers with answer.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []received
	answer http.HandlerFunc
}

type received struct {
	header http.Header
	body   []byte
	at     time.Time
}

func newReceiver(t *testing.T, answer http.HandlerFunc) *receiver {
	t.Helper()
	r := &receiver{answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{header: req.Header.Clone(), body: body, at: time.Now()})
		answer := r.answer
		r.mu.Unlock()
		if answer != nil {
			answer(w, req)
		}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func (r *receiver) setAnswer(h http.HandlerFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answer = h
}

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

func (f fixture) activities(cfg WebhookConfig) *Activities {
	return &Activities{Store: f.st, Env: f.env, HTTP: NewWebhookClient(cfg)}
}

func (f fixture) webhook(url string) WebhookInput {
	return WebhookInput{Scope: f.scope, StepID: "notify", Step: definition.WebhookStep{
		URL: url,
		Body: definition.ExprMap{
			"email":   "contact.email",
			"name":    "contact.first_name",
			"orderId": "trigger.properties.orderId",
			"total":   "trigger.properties.total",
		},
		Headers: definition.Headers{"X-Api-Key": "k_123", "User-Agent": "Custom/2"},
	}}
}

func TestSendWebhookDelivers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rcv := newReceiver(t, nil)
	a := f.activities(WebhookConfig{Allow: loopback})
	in := f.webhook(rcv.URL + "/hooks?src=signalbox")

	res, err := run(t, a.SendWebhook, in)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.Status)
	require.Equal(t, WebhookID(f.scope.WorkflowID, "notify"), res.WebhookID)
	require.True(t, strings.HasPrefix(res.WebhookID, "msg_"))

	got := rcv.requests()
	require.Len(t, got, 1)
	req := got[0]
	// The body is the rendered CEL, marshalled with sorted keys.
	require.JSONEq(t, `{"email":"ada@example.com","name":"Ada","orderId":"ord_42","total":99.5}`, string(req.body))
	require.Equal(t, `{"email":"ada@example.com","name":"Ada","orderId":"ord_42","total":99.5}`, string(req.body))
	require.Equal(t, "application/json", req.header.Get("Content-Type"))
	require.Equal(t, "k_123", req.header.Get("X-Api-Key"))
	require.Equal(t, "Custom/2", req.header.Get("User-Agent"), "a step may replace the User-Agent")

	// The signature verifies as a Standard Webhooks receiver checks it.
	secret, err := f.st.WebhookSecret(context.Background(), f.scope.WorkspaceID)
	require.NoError(t, err)
	require.Len(t, secret, 32)
	id, tsHeader, sig := req.header.Get("webhook-id"), req.header.Get("webhook-timestamp"), req.header.Get("webhook-signature")
	require.Equal(t, res.WebhookID, id)
	ts, err := strconv.ParseInt(tsHeader, 10, 64)
	require.NoError(t, err)
	require.InDelta(t, time.Now().Unix(), ts, 5)
	want := SignWebhook(secret, id, time.Unix(ts, 0), req.body)
	require.True(t, hmac.Equal([]byte(want), []byte(sig)), "signature %s, want %s", sig, want)
	require.NotEqual(t, want, SignWebhook(secret, id, time.Unix(ts, 0), append(req.body, ' ')), "the body is signed")
	require.NotEqual(t, want, SignWebhook(secret, id, time.Unix(ts+1, 0), req.body), "the timestamp is signed")
}

func TestSendWebhookDefaultHeadersAndEmptyBody(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	a := f.activities(WebhookConfig{Allow: loopback})
	in := WebhookInput{Scope: f.scope, StepID: "ping", Step: definition.WebhookStep{URL: rcv.URL}}

	res, err := run(t, a.SendWebhook, in)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, res.Status)
	req := rcv.requests()[0]
	require.Equal(t, "{}", string(req.body))
	require.Equal(t, WebhookUserAgent, req.header.Get("User-Agent"))
}

// TestSignWebhookVector checks SignWebhook against the test vector of the
// Standard Webhooks reference libraries.
func TestSignWebhookVector(t *testing.T) {
	t.Parallel()
	secret, err := base64.StdEncoding.DecodeString("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	require.NoError(t, err)
	require.Equal(t, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", WebhookSecretString(secret))
	got := SignWebhook(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	require.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", got)
}

func TestSendWebhookRetryKeepsID(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "database is down", http.StatusInternalServerError)
	})
	a := f.activities(WebhookConfig{Allow: loopback})
	in := f.webhook(rcv.URL)

	_, err := run(t, a.SendWebhook, in)
	requireRetryable(t, err)
	require.Contains(t, err.Error(), "500")
	require.Contains(t, err.Error(), "database is down")

	time.Sleep(1100 * time.Millisecond) // a later second, so the timestamp moves on
	rcv.setAnswer(nil)
	res, err := run(t, a.SendWebhook, in)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.Status)

	got := rcv.requests()
	require.Len(t, got, 2)
	require.Equal(t, got[0].header.Get("webhook-id"), got[1].header.Get("webhook-id"))
	require.Equal(t, res.WebhookID, got[1].header.Get("webhook-id"))
	require.NotEqual(t, got[0].header.Get("webhook-timestamp"), got[1].header.Get("webhook-timestamp"),
		"each attempt is signed at its own time")
	require.Equal(t, got[0].body, got[1].body)

	// Another step of the same enrollment is another message.
	require.NotEqual(t, res.WebhookID, WebhookID(f.scope.WorkflowID, "other"))
}

func TestSendWebhookOutcomes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.activities(WebhookConfig{Allow: loopback})
	for _, c := range []struct {
		status    int
		permanent bool
	}{
		{http.StatusBadRequest, true},
		{http.StatusUnauthorized, true},
		{http.StatusNotFound, true},
		{http.StatusGone, true},
		{http.StatusUnprocessableEntity, true},
		{http.StatusRequestTimeout, false},
		{http.StatusTooManyRequests, false},
		{http.StatusInternalServerError, false},
		{http.StatusBadGateway, false},
		{http.StatusServiceUnavailable, false},
		{http.StatusGatewayTimeout, false},
	} {
		t.Run(strconv.Itoa(c.status), func(t *testing.T) {
			t.Parallel()
			rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(c.status) })
			_, err := run(t, a.SendWebhook, f.webhook(rcv.URL))
			if c.permanent {
				requirePermanent(t, err, ErrTypeRejected)
			} else {
				requireRetryable(t, err)
			}
			require.Len(t, rcv.requests(), 1)
		})
	}
}

func TestSendWebhookRetryAfter(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	a := f.activities(WebhookConfig{Allow: loopback})
	_, err := run(t, a.SendWebhook, f.webhook(rcv.URL))
	requireRetryable(t, err)
	var app *temporal.ApplicationError
	require.True(t, errors.As(err, &app))
	require.Equal(t, 2*time.Minute, app.NextRetryDelay())
}

func TestSendWebhookDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	target := newReceiver(t, nil)
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/elsewhere", http.StatusFound)
	})
	a := f.activities(WebhookConfig{Allow: loopback})

	_, err := run(t, a.SendWebhook, f.webhook(rcv.URL))
	requirePermanent(t, err, ErrTypeRejected)
	require.Contains(t, err.Error(), "302")
	require.Len(t, rcv.requests(), 1)
	require.Empty(t, target.requests(), "the redirect target is never contacted")
}

func TestSendWebhookTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	release := make(chan struct{})
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	a := f.activities(WebhookConfig{Allow: loopback, Timeout: 200 * time.Millisecond})

	start := time.Now()
	_, err := run(t, a.SendWebhook, f.webhook(rcv.URL))
	requireRetryable(t, err)
	require.Less(t, time.Since(start), 5*time.Second)
	require.Len(t, rcv.requests(), 1)
}

func TestSendWebhookRefusesLoopback(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rcv := newReceiver(t, nil)
	a := f.activities(WebhookConfig{}) // production defaults: public addresses only

	for _, url := range []string{rcv.URL, strings.Replace(rcv.URL, "127.0.0.1", "localhost", 1)} {
		_, err := run(t, a.SendWebhook, f.webhook(url))
		requirePermanent(t, err, ErrTypeRefused)
		require.Contains(t, err.Error(), "WEBHOOK_ALLOWLIST")
	}
	require.Empty(t, rcv.requests(), "a refused destination is never contacted")
}

func TestSendWebhookUnreachableIsRetryable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rcv := newReceiver(t, nil)
	url := rcv.URL
	rcv.Close() // nothing listens there any more
	a := f.activities(WebhookConfig{Allow: loopback})
	_, err := run(t, a.SendWebhook, f.webhook(url))
	requireRetryable(t, err)
}

// TestSendWebhookCapsResponse answers with an endless body: the activity
// reads 64 KiB, stops, and the receiver finds the connection gone long
// before it has written much.
func TestSendWebhookCapsResponse(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const offered = 1 << 30
	var written atomic.Int64
	done := make(chan struct{})
	rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		defer close(done)
		w.WriteHeader(http.StatusInternalServerError)
		chunk := []byte(strings.Repeat("x", 32<<10))
		for written.Load() < offered {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	a := f.activities(WebhookConfig{Allow: loopback})

	_, err := run(t, a.SendWebhook, f.webhook(rcv.URL))
	requireRetryable(t, err)
	require.Less(t, len(err.Error()), 2<<10, "the error quotes only the start of the answer")
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver is still writing")
	}
	require.Less(t, written.Load(), int64(64<<20), "the client stopped reading; the receiver wrote %d bytes", written.Load())
}

func TestSendWebhookInvalid(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rcv := newReceiver(t, nil)
	a := f.activities(WebhookConfig{Allow: loopback})

	in := f.webhook(rcv.URL)
	in.Step.Body = definition.ExprMap{"bad": "trigger.properties.missing.deeper"}
	_, err := run(t, a.SendWebhook, in)
	requirePermanent(t, err, ErrTypeInvalid)

	in = f.webhook("ftp://example.com/")
	_, err = run(t, a.SendWebhook, in)
	requirePermanent(t, err, ErrTypeInvalid)

	in = f.webhook(rcv.URL)
	in.Step.Headers = definition.Headers{"X-Bad": "line\r\nInjected: yes"}
	_, err = run(t, a.SendWebhook, in)
	requirePermanent(t, err, ErrTypeInvalid)
	require.Empty(t, rcv.requests())
}

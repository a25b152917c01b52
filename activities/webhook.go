package activities

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"golang.org/x/net/http/httpguts"

	"github.com/signalbox/signalbox/definition"
)

// WebhookUserAgent identifies Signalbox to webhook receivers; a step's
// headers may replace it.
const WebhookUserAgent = "Signalbox-Webhooks/1"

// Standard Webhooks header names (https://www.standardwebhooks.com).
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// maxResponseRead is how much of a receiver's answer is read: enough to
// explain a failure, and no more, whatever the receiver sends.
const maxResponseRead = 64 << 10

// maxErrorBody is how much of that answer goes into an error message,
// which Temporal keeps in the workflow's history.
const maxErrorBody = 512

// maxRetryAfter caps how long a receiver's Retry-After can push the next
// attempt back.
const maxRetryAfter = 10 * time.Minute

// WebhookInput is a webhook step to deliver for an enrollment.
type WebhookInput struct {
	Scope  Scope                  `json:"scope"`
	StepID string                 `json:"step_id"`
	Step   definition.WebhookStep `json:"step"`
	// Book asks the activity to do the step's bookkeeping once done.
	Book *Bookkeeping `json:"book,omitempty"`
}

// WebhookResult is the receiver's answer and the id the delivery carried.
type WebhookResult struct {
	Booking
	Status    int    `json:"status"`
	WebhookID string `json:"webhook_id"`
}

// WebhookID is the Standard Webhooks message id of a step's delivery. It
// depends only on the workflow and the step, so every retry carries the
// same id and receivers can drop duplicates.
func WebhookID(workflowID, stepID string) string {
	sum := sha256.Sum256([]byte(workflowID + "/" + stepID))
	return "msg_" + hex.EncodeToString(sum[:16])
}

// SignWebhook returns the webhook-signature header value for a delivery:
// "v1," and the base64 HMAC-SHA256 under secret of "id.timestamp.body",
// where timestamp is ts in Unix seconds. Receivers verify the same way.
func SignWebhook(secret []byte, id string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// WebhookSecretString is a workspace's signing secret the way Standard
// Webhooks libraries take it: "whsec_" and the base64 of the raw bytes.
func WebhookSecretString(secret []byte) string {
	return "whsec_" + base64.StdEncoding.EncodeToString(secret)
}

// sendWebhook renders a webhook step's body and posts it, signed, to the
// step's URL. A 2xx answer is success. 408, 429, 5xx and network failures
// return a retryable error, so Temporal's retry policy backs off; Retry-After
// on 429 and 503 sets the next delay. Redirects, other 4xx answers, a
// destination the network guard refuses and a body that fails to render
// are permanent.
//
// Delivery is at least once: every attempt carries the same webhook-id,
// which is how Standard Webhooks receivers drop a repeat (so, unlike email,
// nothing is recorded in step_effects).
func (a *Activities) sendWebhook(ctx context.Context, in WebhookInput) (WebhookResult, error) {
	id := WebhookID(in.Scope.WorkflowID, in.StepID)
	res := WebhookResult{WebhookID: id}

	u, err := url.Parse(in.Step.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return res, permanent(ErrTypeInvalid, fmt.Errorf("webhook url %q is not an absolute http or https URL", in.Step.URL))
	}
	ws := in.Scope.WorkspaceID
	vars, err := a.vars(ctx, in.Scope)
	if err != nil {
		return res, err
	}
	fields, err := a.render(ctx, in.Step.Body, vars)
	if err != nil {
		return res, keepPermanent(err)
	}
	body, err := json.Marshal(fields)
	if err != nil {
		return res, permanent(ErrTypeInvalid, fmt.Errorf("webhook body: %w", err))
	}
	keys, err := a.Store.WebhookSecrets(ctx, ws)
	if err != nil {
		return res, fmt.Errorf("webhook secret: %w", err)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return res, permanent(ErrTypeInvalid, fmt.Errorf("webhook request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", WebhookUserAgent)
	// A step may replace Content-Type and User-Agent; the signature headers
	// come last so that nothing in a definition can forge or break them.
	for _, k := range in.Step.Headers.Keys() {
		v := in.Step.Headers[k]
		if !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) {
			return res, permanent(ErrTypeInvalid, fmt.Errorf("webhook header %q is not a valid HTTP header", k))
		}
		req.Header.Set(k, v)
	}
	now := time.Now()
	req.Header.Set(HeaderWebhookID, id)
	req.Header.Set(HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	// After a rotation, one signature under each secret, space-separated
	// as Standard Webhooks allows: receivers on either verify.
	sig := SignWebhook(keys.Current, id, now, body)
	if keys.Previous != nil {
		sig += " " + SignWebhook(keys.Previous, id, now, body)
	}
	req.Header.Set(HeaderWebhookSignature, sig)

	resp, err := a.HTTP.Do(req)
	if err != nil {
		var refused *RefusedError
		if errors.As(err, &refused) {
			return res, permanent(ErrTypeRefused, fmt.Errorf("webhook to %s: %w", u.Redacted(), refused))
		}
		// Timeouts, refused connections, resets, TLS failures: try again.
		return res, fmt.Errorf("webhook to %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	// Reading what is left of the capped answer lets the connection be
	// reused; a longer answer is cut off and its connection closed.
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseRead))
	res.Status = resp.StatusCode

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return res, nil
	}
	failure := fmt.Errorf("webhook to %s answered %s%s", u.Redacted(), resp.Status, excerpt(answer))
	switch code := resp.StatusCode; {
	case code >= 300 && code < 400:
		return res, permanent(ErrTypeRejected, fmt.Errorf("%w; redirects are not followed, update the step's url", failure))
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		if delay, ok := retryAfter(resp, now); ok {
			return res, temporal.NewApplicationErrorWithOptions(failure.Error(), "WebhookRetryAfter",
				temporal.ApplicationErrorOptions{NextRetryDelay: delay, Cause: failure})
		}
		return res, failure
	default:
		return res, permanent(ErrTypeRejected, failure)
	}
}

// retryAfter reads the Retry-After of a 429 or 503 answer, in seconds or as
// an HTTP date, capped at maxRetryAfter.
func retryAfter(resp *http.Response, now time.Time) (time.Duration, bool) {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return 0, false
	}
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.Atoi(v); err == nil {
		d = time.Duration(secs) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	} else {
		return 0, false
	}
	if d <= 0 {
		return 0, false
	}
	return min(d, maxRetryAfter), true
}

// excerpt quotes the start of a receiver's answer for an error message.
func excerpt(b []byte) string {
	s := strings.TrimSpace(strings.ToValidUTF8(string(b[:min(len(b), maxErrorBody)]), "\uFFFD"))
	if s == "" {
		return ""
	}
	if len(b) > maxErrorBody {
		s += "…"
	}
	return ": " + strconv.Quote(s)
}

// keepPermanent lifts a non-retryable error wrapped inside err to the top,
// where Temporal decides whether to retry: a permanent failure wrapped by
// fmt.Errorf would otherwise be retried like any other error.
func keepPermanent(err error) error {
	var app *temporal.ApplicationError
	if _, top := err.(*temporal.ApplicationError); top || !errors.As(err, &app) || !app.NonRetryable() {
		return err
	}
	return temporal.NewNonRetryableApplicationError(err.Error(), app.Type(), err)
}

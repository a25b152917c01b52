package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
)

// backfillPoll is how often the CLI reads a backfill's progress.
var backfillPoll = time.Second

// runBackfill is `signalbox automations backfill ID --since ... --until
// ...`: it starts a backfill through the API and follows it with a
// progress bar until it ends. Ctrl-C stops following, not the backfill.
func runBackfill(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, help string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, help)
		return errUsage
	}
	id := args[0]
	fs := flag.NewFlagSet("automations backfill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	since := fs.String("since", "", "start of the window (RFC 3339), required")
	until := fs.String("until", "", "end of the window (RFC 3339), default now")
	rate := fs.Float64("rate", 0, "events a second, at most (default the server's, 100)")
	apiURL := fs.String("url", or(getenv("SIGNALBOX_API_URL"), "http://127.0.0.1:8080"), "API address (SIGNALBOX_API_URL)")
	key := fs.String("key", getenv("SIGNALBOX_API_KEY"), "API key (SIGNALBOX_API_KEY)")
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	if *since == "" {
		fmt.Fprintln(stderr, help)
		return errUsage
	}
	if *key == "" {
		return errors.New("an API key is required: set SIGNALBOX_API_KEY or pass --key")
	}
	body := map[string]any{"since": *since, "mode": "skip_enrolled"}
	if *until != "" {
		body["until"] = *until
	}
	if *rate > 0 {
		body["rate"] = *rate
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	c := &apiClient{base: strings.TrimRight(*apiURL, "/"), key: *key, http: &http.Client{Timeout: 30 * time.Second}}
	var b backfillProgress
	if err := c.do(ctx, "POST", "/v1/automations/"+id+"/backfill", raw, http.StatusAccepted, &b); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backfill %s: %d events between %s and %s\n", b.ID, b.Total, b.Since.Format(time.RFC3339),
		b.Until.Format(time.RFC3339))
	for b.Status == "running" {
		fmt.Fprint(stdout, "\r"+b.bar())
		select {
		case <-ctx.Done():
			fmt.Fprintf(stdout, "\nstopped following; the backfill goes on: signalbox automations backfill is not needed to resume it (GET /v1/backfills/%s)\n", b.ID)
			return nil
		case <-time.After(backfillPoll):
		}
		if err := c.do(ctx, "GET", "/v1/backfills/"+b.ID, nil, http.StatusOK, &b); err != nil {
			return err
		}
	}
	fmt.Fprint(stdout, "\r"+b.bar()+"\n")
	fmt.Fprintf(stdout, "backfill %s %s: %d processed, %d enrolled%s\n", b.ID, b.Status, b.Processed, b.Enrolled, b.skippedText())
	if b.Status != "completed" {
		reason := ""
		if b.Reason != nil {
			reason = ": " + *b.Reason
		}
		return fmt.Errorf("backfill %s%s", b.Status, reason)
	}
	return nil
}

// backfillProgress is the part of a backfill the CLI shows.
type backfillProgress struct {
	ID         string           `json:"id"`
	Since      time.Time        `json:"since"`
	Until      time.Time        `json:"until"`
	Status     string           `json:"status"`
	Total      int64            `json:"total"`
	Processed  int64            `json:"processed"`
	Enrolled   int64            `json:"enrolled"`
	Skipped    map[string]int64 `json:"skipped"`
	ETASeconds *float64         `json:"eta_seconds"`
	Reason     *string          `json:"reason"`
}

// bar draws a 30-character progress bar with the counts and the time left.
func (b backfillProgress) bar() string {
	const width = 30
	frac := 1.0
	if b.Total > 0 {
		frac = min(1, float64(b.Processed)/float64(b.Total))
	}
	filled := int(frac * width)
	eta := ""
	if b.ETASeconds != nil {
		eta = ", about " + (time.Duration(*b.ETASeconds) * time.Second).String() + " left"
	}
	return fmt.Sprintf("[%s%s] %3.0f%% %d/%d, %d enrolled%s", strings.Repeat("#", filled), strings.Repeat(".", width-filled),
		100*frac, b.Processed, b.Total, b.Enrolled, eta)
}

func (b backfillProgress) skippedText() string {
	if len(b.Skipped) == 0 {
		return ""
	}
	keys := make([]string, 0, len(b.Skipped))
	for k := range b.Skipped {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, b.Skipped[k]))
	}
	return ", skipped: " + strings.Join(parts, ", ")
}

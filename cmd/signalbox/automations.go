package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// runAutomations is `signalbox automations apply -f FILE`: it creates the
// automation the file names, or saves the file as a new version of the one
// with that name, through the HTTP API like any client.
func runAutomations(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const help = "usage: signalbox automations apply -f FILE [--enable] [--url URL] [--key KEY]\n" +
		"       signalbox automations backfill ID --since TIME [--until TIME] [--rate N] [--url URL] [--key KEY]"
	if len(args) > 0 && args[0] == "backfill" {
		return runBackfill(ctx, args[1:], getenv, stdout, stderr, help)
	}
	if len(args) == 0 || args[0] != "apply" {
		fmt.Fprintln(stderr, help)
		return errUsage
	}
	fs := flag.NewFlagSet("automations apply", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "automation definition (JSON); - reads standard input")
	enable := fs.Bool("enable", false, "enable the automation after saving it")
	apiURL := fs.String("url", or(getenv("SIGNALBOX_API_URL"), "http://127.0.0.1:8080"), "API address (SIGNALBOX_API_URL)")
	key := fs.String("key", getenv("SIGNALBOX_API_KEY"), "API key (SIGNALBOX_API_KEY)")
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	if *file == "" {
		fmt.Fprintln(stderr, help)
		return errUsage
	}
	if *key == "" {
		return errors.New("an API key is required: set SIGNALBOX_API_KEY or pass --key")
	}
	var (
		doc []byte
		err error
	)
	if *file == "-" {
		doc, err = io.ReadAll(os.Stdin)
	} else {
		doc, err = os.ReadFile(*file)
	}
	if err != nil {
		return err
	}
	c := &apiClient{base: strings.TrimRight(*apiURL, "/"), key: *key, http: &http.Client{Timeout: 30 * time.Second}}

	var checked struct {
		Name       string          `json:"name"`
		Definition json.RawMessage `json:"definition"`
		// Warnings are what the event catalog says of the definition
		// (undeclared names, properties the schemas do not declare).
		Warnings []struct {
			Pointer string `json:"pointer"`
			Code    string `json:"code"`
			Detail  string `json:"detail"`
		} `json:"warnings"`
	}
	if err := c.do(ctx, "POST", "/v1/automations/validate", doc, http.StatusOK, &checked); err != nil {
		return err
	}
	for _, w := range checked.Warnings {
		fmt.Fprintf(stdout, "warning: %s: %s (%s)\n", w.Pointer, w.Detail, w.Code)
	}
	existing, err := c.findByName(ctx, checked.Name)
	if err != nil {
		return err
	}
	var saved struct {
		ID      string `json:"id"`
		Version int    `json:"version"`
		Status  string `json:"status"`
	}
	switch {
	case existing == nil:
		if err := c.do(ctx, "POST", "/v1/automations", doc, http.StatusCreated, &saved); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created automation %q (%s) at version %d\n", checked.Name, saved.ID, saved.Version)
	case jsonEqual(existing.Definition, checked.Definition):
		saved.ID, saved.Version, saved.Status = existing.ID, existing.Version, existing.Status
		fmt.Fprintf(stdout, "automation %q (%s) is unchanged at version %d\n", checked.Name, saved.ID, saved.Version)
	default:
		if err := c.do(ctx, "PUT", "/v1/automations/"+existing.ID, doc, http.StatusOK, &saved); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "saved automation %q (%s) as version %d; running enrollments finish on theirs\n",
			checked.Name, saved.ID, saved.Version)
	}
	if *enable && saved.Status != "enabled" {
		if err := c.do(ctx, "POST", "/v1/automations/"+saved.ID+"/enable", nil, http.StatusOK, &saved); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "enabled automation %q\n", checked.Name)
	}
	return nil
}

// apiClient is the small HTTP client the CLI needs.
type apiClient struct {
	base, key string
	http      *http.Client
}

type listedAutomation struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Version    int             `json:"version"`
	Status     string          `json:"status"`
	Definition json.RawMessage `json:"definition"`
}

func (c *apiClient) findByName(ctx context.Context, name string) (*listedAutomation, error) {
	cursor := ""
	for {
		path := "/v1/automations?limit=1000"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		var page struct {
			Data       []listedAutomation `json:"data"`
			NextCursor *string            `json:"next_cursor"`
		}
		if err := c.do(ctx, "GET", path, nil, http.StatusOK, &page); err != nil {
			return nil, err
		}
		for i := range page.Data {
			if page.Data[i].Name == name {
				return &page.Data[i], nil
			}
		}
		if page.NextCursor == nil {
			return nil, nil
		}
		cursor = *page.NextCursor
	}
}

// do sends a request and decodes the answer, turning problem documents into
// readable errors that list each offending field or JSON pointer.
func (c *apiClient) do(ctx context.Context, method, path string, body []byte, want int, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		var p struct {
			Detail string `json:"detail"`
			Errors []struct {
				Field  string `json:"field"`
				Detail string `json:"detail"`
			} `json:"errors"`
		}
		if json.Unmarshal(raw, &p) != nil || p.Detail == "" {
			return fmt.Errorf("%s %s: %s", method, path, resp.Status)
		}
		if len(p.Errors) == 0 {
			return fmt.Errorf("%s: %s", resp.Status, p.Detail)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s:", resp.Status)
		for _, e := range p.Errors {
			fmt.Fprintf(&b, "\n  %s: %s", e.Field, e.Detail)
		}
		return errors.New(b.String())
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

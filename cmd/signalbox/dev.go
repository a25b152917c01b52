package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/signalbox/signalbox/store"
)

// runDev is what `make run` starts: migrate, make sure a dev workspace
// exists, print how to reach everything, then run every role.
func runDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyFile := fs.String("dev-key-file", ".data/dev-api-key", "file that keeps the dev workspace's API key between runs")
	uiURL := fs.String("temporal-ui", or(getenv("TEMPORAL_UI_URL"), "http://127.0.0.1:8233"), "Temporal Web UI address to print")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	url := getenv("DATABASE_URL")
	if url == "" {
		return errors.New("DATABASE_URL is required")
	}
	if _, err := store.Migrate(ctx, url); err != nil {
		return err
	}
	st, err := openStore(ctx, getenv)
	if err != nil {
		return err
	}
	secret, wsID, created, err := devKey(ctx, st, *keyFile)
	st.Close()
	if err != nil {
		return fmt.Errorf("dev workspace: %w", err)
	}
	return runServices(ctx, getenv, stdout, stderr, roles{api: true, worker: true, ready: func(addr string) {
		state := "existing"
		if created {
			state = "new"
		}
		fmt.Fprintf(stdout, `
Signalbox is running (Ctrl-C stops it).
  API              http://%s
  Temporal Web UI  %s
  Workspace        %s (%s, dev)
  API key          %s

Try it:
  export SIGNALBOX_API_KEY=%s
  curl -s http://%s/v1/events -H "Authorization: Bearer $SIGNALBOX_API_KEY" \
    -d '{"name":"signed.up","email":"ada@example.com","create_if_missing":true}'

`, addr, *uiURL, wsID, state, secret, secret, addr)
	}})
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

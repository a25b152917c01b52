package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/signalbox/signalbox/apikey"
	"github.com/signalbox/signalbox/store"
)

// openStore connects with DATABASE_URL for the admin commands.
func openStore(ctx context.Context, getenv func(string) string) (*store.Store, error) {
	url := getenv("DATABASE_URL")
	if url == "" {
		return nil, errors.New("DATABASE_URL is required")
	}
	return store.Open(ctx, url, store.Config{MaxConns: 2})
}

func runMigrate(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	url := getenv("DATABASE_URL")
	if url == "" {
		return errors.New("DATABASE_URL is required")
	}
	v, err := store.Migrate(ctx, url)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "database schema at version %d\n", v)
	return nil
}

func runWorkspace(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		fmt.Fprintln(stderr, "usage: signalbox workspace create --name NAME [--plan starter|growth|scale|enterprise] [--json]")
		return errUsage
	}
	fs := flag.NewFlagSet("workspace create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "workspace name (required)")
	plan := fs.String("plan", string(store.PlanStarter), "billing plan: starter, growth, scale or enterprise")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	if strings.TrimSpace(*name) == "" || len(*name) > 200 {
		return errors.New("--name is required (1 to 200 characters)")
	}
	if !store.Plan(*plan).Valid() {
		return fmt.Errorf("--plan must be one of starter, growth, scale, enterprise; got %q", *plan)
	}
	st, err := openStore(ctx, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	ws, key, err := st.CreateWorkspace(ctx, *name, store.Plan(*plan))
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]string{
			"workspace_id": ws.ID.String(), "name": ws.Name, "plan": string(ws.Plan),
			"api_key": key.Secret, "api_key_prefix": key.Prefix,
		})
	}
	fmt.Fprintf(stdout, "workspace %s (%s, plan %s)\napi key %s\n(the key is shown only once)\n",
		ws.ID, ws.Name, ws.Plan, key.Secret)
	return nil
}

func runAPIKey(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const help = "usage: signalbox apikey create --workspace ID | signalbox apikey list --workspace ID | signalbox apikey revoke PREFIX"
	if len(args) == 0 {
		fmt.Fprintln(stderr, help)
		return errUsage
	}
	switch args[0] {
	case "create":
		wsID, st, err := workspaceStore(ctx, "apikey create", args[1:], stderr, getenv)
		if err != nil {
			return err
		}
		defer st.Close()
		key, err := st.CreateAPIKey(ctx, wsID)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no workspace %s", wsID)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "api key %s\nprefix %s\n(the key is shown only once)\n", key.Secret, key.Prefix)
		return nil
	case "list":
		wsID, st, err := workspaceStore(ctx, "apikey list", args[1:], stderr, getenv)
		if err != nil {
			return err
		}
		defer st.Close()
		keys, err := st.ListAPIKeys(ctx, wsID)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no workspace %s", wsID)
		}
		if err != nil {
			return err
		}
		when := func(t *time.Time) string {
			if t == nil {
				return "-"
			}
			return t.UTC().Format("2006-01-02T15:04:05Z")
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PREFIX\tCREATED\tLAST USED\tREVOKED")
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.Prefix, when(&k.CreatedAt), when(k.LastUsedAt), when(k.RevokedAt))
		}
		return tw.Flush()
	case "revoke":
		if len(args) != 2 {
			fmt.Fprintln(stderr, help)
			return errUsage
		}
		prefix := args[1]
		// A whole key works too: revoke what it names.
		if p, err := apikey.Parse(prefix); err == nil {
			prefix = p
		}
		if !apikey.ValidPrefix(prefix) {
			return fmt.Errorf("%q is not an API key prefix (sbk_ and 8 characters)", prefix)
		}
		st, err := openStore(ctx, getenv)
		if err != nil {
			return err
		}
		defer st.Close()
		k, err := st.RevokeAPIKey(ctx, prefix)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no API key with prefix %s", prefix)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s of workspace %s at %s\n", k.Prefix, k.WorkspaceID, k.RevokedAt.UTC().Format("2006-01-02T15:04:05Z"))
		return nil
	default:
		fmt.Fprintln(stderr, help)
		return errUsage
	}
}

// devKey returns the dev workspace's API key, kept in keyFile so that a
// second `make run` shows the same key; it makes the workspace when the file
// is missing or its key no longer works (a fresh database, say).
func devKey(ctx context.Context, st *store.Store, keyFile string) (secret string, wsID uuid.UUID, created bool, err error) {
	if raw, err := os.ReadFile(keyFile); err == nil {
		secret = strings.TrimSpace(string(raw))
		if prefix, err := apikey.Parse(secret); err == nil {
			if cred, err := st.CredentialByPrefix(ctx, prefix); err == nil && apikey.Equal(secret, cred.Hash) {
				return secret, cred.WorkspaceID, false, nil
			}
		}
	}
	ws, key, err := st.CreateWorkspace(ctx, "dev", store.PlanEnterprise)
	if err != nil {
		return "", uuid.Nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(keyFile), 0o700); err != nil {
		return "", uuid.Nil, false, err
	}
	if err := os.WriteFile(keyFile, []byte(key.Secret+"\n"), 0o600); err != nil {
		return "", uuid.Nil, false, err
	}
	return key.Secret, ws.ID, true, nil
}

// workspaceStore parses an `apikey` subcommand's --workspace flag and opens
// the store.
func workspaceStore(ctx context.Context, name string, args []string, stderr io.Writer,
	getenv func(string) string) (uuid.UUID, *store.Store, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	wsFlag := fs.String("workspace", "", "workspace id (required)")
	if err := fs.Parse(args); err != nil {
		return uuid.Nil, nil, errUsage
	}
	wsID, err := uuid.Parse(*wsFlag)
	if err != nil {
		return uuid.Nil, nil, fmt.Errorf("--workspace must be a workspace id, got %q", *wsFlag)
	}
	st, err := openStore(ctx, getenv)
	if err != nil {
		return uuid.Nil, nil, err
	}
	return wsID, st, nil
}

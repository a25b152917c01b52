package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/api"
	"github.com/signalbox/signalbox/ingest"
	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestWorkspaceAndKeyCommands(t *testing.T) {
	url := storetest.URL(t)
	getenv := env(map[string]string{"DATABASE_URL": url})
	var out, errOut bytes.Buffer
	ctx := context.Background()

	require.NoError(t, run(ctx, []string{"migrate"}, getenv, &out, &errOut))
	require.Contains(t, out.String(), "database schema at version")

	out.Reset()
	require.NoError(t, run(ctx, []string{"workspace", "create", "--name", "Acme", "--plan", "growth", "--json"}, getenv, &out, &errOut))
	var ws struct {
		WorkspaceID  string `json:"workspace_id"`
		APIKey       string `json:"api_key"`
		APIKeyPrefix string `json:"api_key_prefix"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &ws))
	require.Contains(t, ws.APIKey, "sbk_")

	out.Reset()
	require.NoError(t, run(ctx, []string{"apikey", "create", "--workspace", ws.WorkspaceID}, getenv, &out, &errOut))
	require.Contains(t, out.String(), "api key sbk_")

	out.Reset()
	require.NoError(t, run(ctx, []string{"apikey", "revoke", ws.APIKeyPrefix}, getenv, &out, &errOut))
	require.Contains(t, out.String(), "revoked "+ws.APIKeyPrefix)

	require.Error(t, run(ctx, []string{"apikey", "revoke", "sbk_AAAAAAAA"}, getenv, &out, &errOut))
	require.Error(t, run(ctx, []string{"workspace", "create", "--name", "x", "--plan", "gold"}, getenv, &out, &errOut))
	require.ErrorIs(t, run(ctx, []string{"nope"}, getenv, &out, &errOut), errUsage)
}

func TestDevKeyIsKeptBetweenRuns(t *testing.T) {
	st := storetest.New(t, store.Config{})
	file := filepath.Join(t.TempDir(), "key")
	ctx := context.Background()
	k1, ws1, created, err := devKey(ctx, st, file)
	require.NoError(t, err)
	require.True(t, created)
	k2, ws2, created, err := devKey(ctx, st, file)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, k1, k2)
	require.Equal(t, ws1, ws2)
	// A key that no longer works (a fresh database, say) is replaced.
	require.NoError(t, os.WriteFile(file, []byte("sbk_garbage\n"), 0o600))
	k3, _, created, err := devKey(ctx, st, file)
	require.NoError(t, err)
	require.True(t, created)
	require.NotEqual(t, k1, k3)
}

func TestAutomationsApply(t *testing.T) {
	st := storetest.New(t, store.Config{})
	rec := ingest.NewRecorder(st, ingest.RecorderConfig{})
	t.Cleanup(rec.Close)
	srv := httptest.NewServer(api.New(api.Config{Store: st, Recorder: rec, Logger: slog.New(slog.DiscardHandler)}).Handler())
	t.Cleanup(srv.Close)
	_, key := storetest.Workspace(t, st, store.PlanStarter)
	getenv := env(map[string]string{"SIGNALBOX_API_URL": srv.URL, "SIGNALBOX_API_KEY": key})
	dir := t.TempDir()
	file := filepath.Join(dir, "a.json")
	write := func(body string) {
		require.NoError(t, os.WriteFile(file, []byte(body), 0o600))
	}
	ctx := context.Background()
	var out, errOut bytes.Buffer

	write(`{"name":"welcome","trigger":{"event":"signed.up"},"steps":[{"id":"d","type":"delay","duration":"1h"}]}`)
	require.NoError(t, run(ctx, []string{"automations", "apply", "-f", file}, getenv, &out, &errOut))
	require.Contains(t, out.String(), `created automation "welcome"`)
	out.Reset()
	require.NoError(t, run(ctx, []string{"automations", "apply", "-f", file, "--enable"}, getenv, &out, &errOut))
	require.Contains(t, out.String(), "unchanged at version 1")
	require.Contains(t, out.String(), "enabled")
	out.Reset()
	write(`{"name":"welcome","trigger":{"event":"signed.up"},"steps":[{"id":"d","type":"delay","duration":"2h"}]}`)
	require.NoError(t, run(ctx, []string{"automations", "apply", "-f", file}, getenv, &out, &errOut))
	require.Contains(t, out.String(), "as version 2")

	write(`{"name":"welcome","trigger":{"event":"signed.up"},"steps":[{"id":"d","type":"delay","duration":"forever"}]}`)
	err := run(ctx, []string{"automations", "apply", "-f", file}, getenv, &out, &errOut)
	require.ErrorContains(t, err, "/steps/0/duration")
}

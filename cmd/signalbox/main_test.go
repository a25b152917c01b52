package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/activities"
	"github.com/signalbox/signalbox/api"
	"github.com/signalbox/signalbox/conditions"
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

	// The list shows both keys, the first revoked, neither used yet.
	out.Reset()
	require.NoError(t, run(ctx, []string{"apikey", "list", "--workspace", ws.WorkspaceID}, getenv, &out, &errOut))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 3, out.String())
	require.Regexp(t, `^PREFIX\s+CREATED\s+LAST USED\s+REVOKED$`, lines[0])
	require.Regexp(t, `^`+ws.APIKeyPrefix+`\s+\S+Z\s+-\s+\S+Z$`, lines[1])
	require.Regexp(t, `^sbk_\S+\s+\S+Z\s+-\s+-$`, lines[2])
	require.Error(t, run(ctx, []string{"apikey", "list", "--workspace", uuid.NewString()}, getenv, &out, &errOut))

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
	// The event catalog's warnings are printed, and do not stop the save.
	require.Contains(t, out.String(), `warning: /trigger/event: trigger event "signed.up" is not declared`)
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

func TestAutomationsBackfill(t *testing.T) {
	st := storetest.New(t, store.Config{})
	rec := ingest.NewRecorder(st, ingest.RecorderConfig{})
	t.Cleanup(rec.Close)
	srv := httptest.NewServer(api.New(api.Config{Store: st, Recorder: rec, Logger: slog.New(slog.DiscardHandler)}).Handler())
	t.Cleanup(srv.Close)
	ws, key := storetest.Workspace(t, st, store.PlanStarter)
	getenv := env(map[string]string{"SIGNALBOX_API_URL": srv.URL, "SIGNALBOX_API_KEY": key})
	ctx := context.Background()
	var out, errOut bytes.Buffer

	for i := range 5 {
		_, err := rec.Record(ctx, &store.RecordRequest{WorkspaceID: ws.ID, Plan: ws.Plan, Events: []store.EventInput{{Name: "signed.up",
			Email: fmt.Sprintf("u%d@example.com", i), CreateIfMissing: true, Properties: json.RawMessage(`{}`),
			OccurredAt: time.Now().Add(-time.Hour)}}})
		require.NoError(t, err)
	}
	file := filepath.Join(t.TempDir(), "a.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"name":"welcome","trigger":{"event":"signed.up"},
		"steps":[{"id":"d","type":"delay","duration":"1h"}]}`), 0o600))
	require.NoError(t, run(ctx, []string{"automations", "apply", "-f", file}, getenv, &out, &errOut))
	a, err := st.GetAutomationByName(ctx, ws.ID, "welcome")
	require.NoError(t, err)

	require.ErrorIs(t, run(ctx, []string{"automations", "backfill"}, getenv, &out, &errOut), errUsage)
	require.ErrorIs(t, run(ctx, []string{"automations", "backfill", a.ID.String()}, getenv, &out, &errOut), errUsage)
	err = run(ctx, []string{"automations", "backfill", a.ID.String(), "--since", "yesterday"}, getenv, &out, &errOut)
	require.ErrorContains(t, err, "since")

	// A worker's part, done here: run the pages while the CLI follows.
	env, err := conditions.NewEnv(conditions.Config{})
	require.NoError(t, err)
	acts := &activities.Activities{Store: st, Env: env}
	backfillPoll = 20 * time.Millisecond
	go func() {
		for ctx.Err() == nil {
			list, err := st.ListBackfills(ctx, ws.ID, a.ID, 1)
			if err == nil && len(list) == 1 {
				_, _ = acts.BackfillPage(ctx, activities.BackfillPageInput{BackfillID: list[0].ID, WorkspaceID: ws.ID, PageSize: 2})
				time.Sleep(30 * time.Millisecond)
			}
		}
	}()
	out.Reset()
	since := time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339)
	require.NoError(t, run(ctx, []string{"automations", "backfill", a.ID.String(), "--since", since, "--rate", "50"},
		getenv, &out, &errOut))
	require.Contains(t, out.String(), "5 events between")
	require.Contains(t, out.String(), "100% 5/5, 5 enrolled")
	require.Contains(t, out.String(), "completed: 5 processed, 5 enrolled")
	out.Reset()
	require.NoError(t, run(ctx, []string{"automations", "backfill", a.ID.String(), "--since", since}, getenv, &out, &errOut))
	require.Contains(t, out.String(), "0 enrolled, skipped: already_enrolled 5")
}

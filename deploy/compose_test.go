package deploy_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
)

// loadCompose loads deploy/compose/compose.yaml as `docker compose config`
// would: schema validation (unknown keys fail), interpolation, consistency
// checks. The environment is empty, so every default in the file is used.
func loadCompose(t *testing.T, env []string) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{filepath.Join("compose", "compose.yaml")},
		cli.WithWorkingDirectory("compose"), cli.WithEnv(env),
		cli.WithInterpolation(true), cli.WithNormalization(true), cli.WithConsistency(true), cli.WithResolvedPaths(true))
	require.NoError(t, err)
	p, err := opts.LoadProject(context.Background())
	require.NoError(t, err)
	return p
}

func TestComposeTopology(t *testing.T) {
	p := loadCompose(t, nil)
	require.Equal(t, "signalbox", p.Name)

	names := p.ServiceNames()
	slices.Sort(names)
	require.Equal(t, []string{"api-1", "api-2", "migrate", "postgresql", "temporal", "temporal-schema",
		"temporal-setup", "temporal-ui", "worker-1", "worker-2", "worker-3"}, names)

	svc := func(name string) types.ServiceConfig {
		s, err := p.GetService(name)
		require.NoError(t, err)
		return s
	}
	dep := func(name, on, condition string) {
		t.Helper()
		d, ok := svc(name).DependsOn[on]
		require.True(t, ok, "%s does not depend on %s", name, on)
		require.Equal(t, condition, d.Condition, "%s on %s", name, on)
	}
	dep("temporal-schema", "postgresql", types.ServiceConditionHealthy)
	dep("temporal", "temporal-schema", types.ServiceConditionCompletedSuccessfully)
	dep("temporal-setup", "temporal", types.ServiceConditionHealthy)
	dep("temporal-ui", "temporal-setup", types.ServiceConditionCompletedSuccessfully)
	dep("migrate", "postgresql", types.ServiceConditionHealthy)

	var apis, workers int
	for _, name := range names {
		s := svc(name)
		switch {
		case strings.HasPrefix(name, "api-"), strings.HasPrefix(name, "worker-"):
			role, _, _ := strings.Cut(name, "-")
			if role == "api" {
				apis++
			} else {
				workers++
			}
			require.Equal(t, types.ShellCommand{role}, s.Command, name)
			require.Equal(t, "signalbox:local", s.Image, name)
			require.NotNil(t, s.Build, name)
			require.Equal(t, "Dockerfile", s.Build.Dockerfile, name)
			dep(name, "migrate", types.ServiceConditionCompletedSuccessfully)
			dep(name, "temporal-setup", types.ServiceConditionCompletedSuccessfully)
			require.NotNil(t, s.HealthCheck, name)
			require.Equal(t, "CMD", s.HealthCheck.Test[0], name)
			require.Equal(t, "/usr/local/bin/signalbox", s.HealthCheck.Test[1], name)
			require.Equal(t, "probe", s.HealthCheck.Test[2], name)
			port := "8080"
			if role == "worker" {
				port = "8081"
			}
			require.Equal(t, "http://127.0.0.1:"+port+"/readyz", s.HealthCheck.Test[3], name)
			env := s.Environment
			for _, k := range []string{"DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "HEALTH_ADDR", "HTTP_ADDR"} {
				require.NotNil(t, env[k], "%s: %s", name, k)
			}
			require.Equal(t, "temporal:7233", *env["TEMPORAL_ADDRESS"])
			require.Equal(t, "signalbox", *env["TEMPORAL_NAMESPACE"])
			require.Equal(t, "postgres://signalbox:signalbox@postgresql:5432/signalbox?sslmode=disable", *env["DATABASE_URL"])
		}
	}
	require.Equal(t, 2, apis)
	require.Equal(t, 3, workers)

	// Every long-running service but the UI has a health check; one-shot
	// services do not restart.
	for _, name := range []string{"postgresql", "temporal"} {
		require.NotNil(t, svc(name).HealthCheck, name)
	}
	for _, name := range []string{"temporal-schema", "temporal-setup", "migrate"} {
		require.Equal(t, "no", svc(name).Restart, name)
	}
	require.Equal(t, types.ShellCommand{"migrate"}, svc("migrate").Command)

	// The Temporal server on PostgreSQL, with more than one history shard.
	tenv := svc("temporal").Environment
	require.Equal(t, "postgres12", *tenv["DB"])
	require.Equal(t, "postgresql", *tenv["POSTGRES_SEEDS"])
	require.Equal(t, "16", *tenv["NUM_HISTORY_SHARDS"])
	require.Len(t, svc("temporal").Volumes, 1)
	require.FileExists(t, svc("temporal").Volumes[0].Source, "the dynamic config file is mounted from the repository")

	// The setup registers the three search attributes the workflows set.
	setup := strings.Join(svc("temporal-setup").Command, " ")
	for _, attr := range []string{"SignalboxWorkspace", "SignalboxAutomation", "SignalboxContact"} {
		require.Contains(t, setup, attr)
	}
	require.Contains(t, setup, "namespace create")
	schema := strings.Join(svc("temporal-schema").Command, " ")
	require.Contains(t, schema, `update-schema --schema-name "postgresql/v12/$schema"`)
	require.Contains(t, schema, "schema=visibility")
}

func TestComposeInterpolation(t *testing.T) {
	p := loadCompose(t, []string{"POSTGRES_PASSWORD=s3cret", "TEMPORAL_NAMESPACE=prod", "TEMPORAL_HISTORY_SHARDS=512", "WORKER_POLLERS=4"})
	w, err := p.GetService("worker-2")
	require.NoError(t, err)
	require.Equal(t, "postgres://signalbox:s3cret@postgresql:5432/signalbox?sslmode=disable", *w.Environment["DATABASE_URL"])
	require.Equal(t, "prod", *w.Environment["TEMPORAL_NAMESPACE"])
	require.Equal(t, "4", *w.Environment["WORKER_POLLERS"])
	tmp, err := p.GetService("temporal")
	require.NoError(t, err)
	require.Equal(t, "512", *tmp.Environment["NUM_HISTORY_SHARDS"])
}

// TestComposeLoaderIsStrict makes sure the check above would catch a
// misspelled key: the same loader refuses one.
func TestComposeLoaderIsStrict(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "compose.yaml"), "services:\n  a:\n    image: x\n    helthcheck:\n      test: [\"CMD\", \"true\"]\n")
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "compose.yaml")}, cli.WithWorkingDirectory(dir), cli.WithEnv(nil))
	require.NoError(t, err)
	_, err = opts.LoadProject(context.Background())
	require.ErrorContains(t, err, "helthcheck")
}

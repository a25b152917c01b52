package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDockerfile checks what the image promises: a static binary built
// without cgo, a distroless final stage, a numeric non-root user, the one
// binary as entrypoint. (No Docker here: the file is read, not built.)
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	require.NoError(t, err)
	df := string(raw)
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)(?:\s+AS\s+(\S+))?`).FindAllStringSubmatch(df, -1)
	require.Len(t, froms, 2, "a build stage and a final stage")
	require.Equal(t, "build", froms[0][2])
	require.True(t, strings.HasPrefix(froms[1][1], "gcr.io/distroless/static"), froms[1][1])
	require.Contains(t, df, "CGO_ENABLED=0")
	require.Contains(t, df, "go build -trimpath")
	require.Contains(t, df, "./cmd/signalbox")
	final := df[strings.LastIndex(df, "\nFROM "):]
	user := regexp.MustCompile(`(?m)^USER\s+(\d+)(:\d+)?$`).FindStringSubmatch(final)
	require.NotNil(t, user, "the final stage runs as a numeric user")
	require.NotEqual(t, "0", user[1])
	require.Contains(t, final, `ENTRYPOINT ["/usr/local/bin/signalbox"]`)
	require.Contains(t, final, "COPY --from=build /out/signalbox /usr/local/bin/signalbox")
}

// TestDockerignoreKeepsTheSources makes sure the build context still has
// what the build needs (modules, sources, embedded files).
func TestDockerignoreKeepsTheSources(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", ".dockerignore"))
	require.NoError(t, err)
	// Root-relative patterns match a path's prefixes; "**/" ones any of
	// its trailing parts.
	var rooted, anywhere []string
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "!") {
			continue
		}
		if p, ok := strings.CutPrefix(line, "**/"); ok {
			anywhere = append(anywhere, p)
		} else {
			rooted = append(rooted, line)
		}
	}
	for _, path := range []string{"go.mod", "go.sum", "cmd/signalbox/main.go", "store/migrations/001_record_path.sql",
		"api/openapi.yaml", "workflows/enrollment.go"} {
		_, err := os.Stat(filepath.Join("..", path))
		require.NoError(t, err, path)
		parts := strings.Split(path, "/")
		for i := range parts {
			for _, p := range rooted {
				ok, err := filepath.Match(p, strings.Join(parts[:i+1], "/"))
				require.NoError(t, err)
				require.False(t, ok, ".dockerignore pattern %q drops %s", p, path)
			}
			for _, p := range anywhere {
				ok, err := filepath.Match(p, strings.Join(parts[i:], "/"))
				require.NoError(t, err)
				require.False(t, ok, ".dockerignore pattern **/%q drops %s", p, path)
			}
		}
	}
}

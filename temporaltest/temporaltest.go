// Package temporaltest starts the pinned Temporal CLI's dev server for
// tests and benchmarks, with the settings `make run` uses: Signalbox's
// search attributes, one task-queue partition, fast transfer polling and
// SQLite in WAL mode.
package temporaltest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
)

// ErrNoCLI says the tests were started without the Temporal CLI.
var ErrNoCLI = errors.New("SIGNALBOX_TEMPORAL_CLI is not set: run the tests with `make test`, which builds the pinned Temporal CLI")

// Options adjust a dev server; the zero value is usable.
type Options struct {
	// CLI is the Temporal CLI to run; empty means CLI().
	CLI string
	// HostPort binds the frontend; empty picks a free port.
	HostPort string
	// DBFile keeps the server's state in a SQLite file, so a stopped server
	// can be started again with its workflows; empty keeps it in memory.
	DBFile string
	// Logger receives the SDK client's logs; nil discards them.
	Logger tlog.Logger
	// Args are more command-line arguments for the server, such as
	// --dynamic-config-value settings a test needs.
	Args []string
}

// CLI returns the path of the pinned Temporal CLI (SIGNALBOX_TEMPORAL_CLI,
// which `make test` and `make bench` set).
func CLI() (string, error) {
	cli := os.Getenv("SIGNALBOX_TEMPORAL_CLI")
	if cli == "" {
		return "", ErrNoCLI
	}
	return cli, nil
}

// ServerArgs are the dev server's settings as `make run` has them:
// Signalbox's search attributes, one task-queue partition, fast transfer
// polling and SQLite in WAL mode (with synchronous=normal, a committed
// transaction survives a crash of the server, if not of the machine).
func ServerArgs() []string {
	return []string{
		"--search-attribute", "SignalboxWorkspace=Keyword",
		"--search-attribute", "SignalboxAutomation=Keyword",
		"--search-attribute", "SignalboxContact=Keyword",
		"--dynamic-config-value", "history.transferProcessorMaxPollRPS=1000",
		"--dynamic-config-value", "matching.numTaskqueueReadPartitions=1",
		"--dynamic-config-value", "matching.numTaskqueueWritePartitions=1",
		"--sqlite-pragma", "journal_mode=wal",
		"--sqlite-pragma", "synchronous=normal",
	}
}

// Start starts a dev server; stop it with its Stop method.
func Start(ctx context.Context, o Options) (*testsuite.DevServer, error) {
	cli := o.CLI
	if cli == "" {
		var err error
		if cli, err = CLI(); err != nil {
			return nil, err
		}
	}
	logger := o.Logger
	if logger == nil {
		logger = tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	}
	return testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  cli,
		ClientOptions: &client.Options{HostPort: o.HostPort, Logger: logger},
		DBFilename:    o.DBFile,
		LogLevel:      "error",
		Stdout:        io.Discard,
		ExtraArgs:     append(ServerArgs(), o.Args...),
	})
}

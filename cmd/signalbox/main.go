// Command signalbox runs every role of Signalbox from one binary: the API,
// the worker, migrations, an all-in-one dev process, and the admin commands
// for workspaces and API keys.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `Usage: signalbox COMMAND [FLAGS]

Commands:
  api                      serve the HTTP API
  worker                   run enrollments (Temporal worker) and background work
  migrate                  apply database migrations and exit
  dev                      migrate, then run the API and the worker in one process
  workspace create         create a workspace and print its first API key
  apikey create            add an API key to a workspace
  apikey revoke PREFIX     revoke an API key
  automations apply -f F   create or version an automation by name (via the API;
                           SIGNALBOX_API_URL, SIGNALBOX_API_KEY)
  automations backfill ID --since T [--until T] [--rate N]
                           run an automation's trigger over recorded events and
                           follow its progress (via the API)
  probe URL                GET URL and succeed on a 2xx answer (health checks
                           in a container image without curl)

Configuration comes from the environment; see the README.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "signalbox:", err)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// run dispatches a command line; main only supplies the process's state.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "api":
		return runServices(ctx, getenv, stdout, stderr, roles{api: true})
	case "worker":
		return runServices(ctx, getenv, stdout, stderr, roles{worker: true})
	case "dev":
		return runDev(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, getenv, stdout)
	case "workspace":
		return runWorkspace(ctx, rest, getenv, stdout, stderr)
	case "apikey":
		return runAPIKey(ctx, rest, getenv, stdout, stderr)
	case "automations":
		return runAutomations(ctx, rest, getenv, stdout, stderr)
	case "probe":
		return runProbe(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
}

#!/usr/bin/env bash
# What `make run` runs: build bin/signalbox, make sure PostgreSQL and a
# Temporal dev server are up, and run `signalbox dev` (API and worker in one
# process; it migrates, creates the dev workspace on first run and prints its
# API key) in the foreground.
#
# Ctrl-C stops signalbox, then the Temporal dev server and the local
# PostgreSQL cluster if this run started them. Everything is kept under .data/,
# so the next `make run` finds the same data (and the same dev API key).
#
# Environment (each may be set beforehand, and is then kept):
#   DATABASE_URL        default: the project-local cluster (scripts/postgres.sh)
#   TEMPORAL_ADDRESS    default: a dev server on 127.0.0.1:$TEMPORAL_PORT (7233)
#   TEMPORAL_NAMESPACE  default: default
#   HTTP_ADDR           default: 127.0.0.1:8080
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
cd "$SB_ROOT"

sb_log "go build -o bin/signalbox ./cmd/signalbox"
go build -o bin/signalbox ./cmd/signalbox
mkdir -p "$SB_DATA"

export HTTP_ADDR="${HTTP_ADDR:-127.0.0.1:8080}"
# Readable logs on a terminal; production keeps the JSON default.
export LOG_FORMAT="${LOG_FORMAT:-text}"
sb_log "signalbox dev: API on http://$HTTP_ADDR (Ctrl-C stops everything this started)"
exec scripts/with-services.sh --temporal -- \
	bin/signalbox dev --dev-key-file "$SB_DATA/dev-api-key"

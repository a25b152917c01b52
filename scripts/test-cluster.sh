#!/usr/bin/env bash
# What `make test-cluster` runs: Signalbox's production topology on this
# machine without containers. It builds (once) the real Temporal server and
# its SQL tool, bin/signalbox and cmd/signalbox-cluster, then runs
# `signalbox-cluster test`: a Temporal server on PostgreSQL persistence with
# CLUSTER_SHARDS (4) history shards in throwaway databases, two `signalbox
# api` and three `signalbox worker` processes, triggers, waits and exits
# through both APIs, one worker killed with SIGKILL mid-run. Everything it
# starts, it stops; PostgreSQL is DATABASE_URL or the project-local cluster.
set -euo pipefail

# shellcheck source=scripts/postgres.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/postgres.sh"
# shellcheck source=scripts/temporal.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/temporal.sh"
# shellcheck source=scripts/cluster.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/cluster.sh"
cd "$SB_ROOT"

cleanup() {
	local rc=$?
	trap - EXIT
	trap '' PIPE
	set +e
	if [[ -n "$PG_STARTED" ]] && ! pg_stop 2>/dev/null; then
		sb_warn "could not stop the local PostgreSQL (scripts/postgres.sh stop)"
		rc=1
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pg_ensure
temporal_build
cluster_build
cluster_env
sb_log "go build bin/signalbox bin/signalbox-cluster"
go build -o "$SB_BIN/signalbox" ./cmd/signalbox
go build -o "$SB_BIN/signalbox-cluster" ./cmd/signalbox-cluster
export SIGNALBOX_BIN="$SB_BIN/signalbox" SIGNALBOX_TEMPORAL_CLI="$SB_BIN/temporal"
"$SB_BIN/signalbox-cluster" test

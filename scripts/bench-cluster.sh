#!/usr/bin/env bash
# What `make bench-cluster` runs: the act path on a real Temporal cluster
# (PostgreSQL persistence, CLUSTER_SHARDS history shards, default 4) and on
# the dev server, in one run: enrollments started and completed per second
# with 1 and with 3 workers against the bare SDK's SignalWithStart on the same
# server, and the outbox's drain after a burst of 20,000 triggering events.
# Figures are printed as ratios (start) and rates (drain). BENCH_DURATION
# (10s) is each measured run. Everything it starts, it stops.
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
sb_log "go build bin/signalbox-actbench bin/signalbox-cluster"
go build -o "$SB_BIN/signalbox-actbench" ./cmd/signalbox-actbench
go build -o "$SB_BIN/signalbox-cluster" ./cmd/signalbox-cluster
export SIGNALBOX_BIN="$SB_BIN/signalbox" SIGNALBOX_ACTBENCH="$SB_BIN/signalbox-actbench" SIGNALBOX_TEMPORAL_CLI="$SB_BIN/temporal"
"$SB_BIN/signalbox-cluster" bench

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

cluster_run bench

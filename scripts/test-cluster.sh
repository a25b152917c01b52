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

cluster_run test

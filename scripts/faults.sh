#!/usr/bin/env bash
# What `make test-faults` runs: the fault suite (faults/) at full size.
#
#   scripts/faults.sh        build what the suite runs, then go test ./faults
#
# The suite starts and owns every process itself: its own PostgreSQL cluster
# (Debian's initdb and pg_ctl, in a directory under $TMPDIR, never the
# machine's server nor the one of `make run`), a Temporal dev server on a
# SQLite file, `signalbox api` and `signalbox worker`. This script only
# provides the binaries, exported for the test:
#   SIGNALBOX_BIN           bin/signalbox, built from this checkout
#   SIGNALBOX_TEMPORAL_CLI  bin/temporal, the pinned CLI (scripts/temporal.sh)
#   SIGNALBOX_PG_BINDIR     Debian's PostgreSQL server binaries (installed
#                           with apt-get when missing, as scripts/postgres.sh does)
# FAULTS_CONTACTS (default 300) sizes the crash phase; FAULTS_TIMEOUT (20m)
# is go test's -timeout.
set -euo pipefail

# shellcheck source=scripts/postgres.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/postgres.sh"
# shellcheck source=scripts/temporal.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/temporal.sh"
cd "$SB_ROOT"

# faults_env builds bin/signalbox, makes sure of bin/temporal and of the
# PostgreSQL server binaries, and exports their paths for the suite.
faults_env() {
	local bindir
	sb_log "go build -o bin/signalbox ./cmd/signalbox"
	go build -o "$SB_BIN/signalbox" ./cmd/signalbox
	temporal_build
	bindir="$(_pg_server_bindir)" || exit 1
	export SIGNALBOX_BIN="$SB_BIN/signalbox"
	export SIGNALBOX_TEMPORAL_CLI="$SB_BIN/temporal"
	export SIGNALBOX_PG_BINDIR="$bindir"
}

# faults_sweep stops the cluster of a suite run whose test binary is gone
# (go test's -timeout kills the binary before its clean-up can run; every
# other process it started dies with it). The run's directory stays for its
# logs; the suite's next run deletes it.
faults_sweep() {
	local dir pid
	for dir in "${TMPDIR:-/tmp}"/signalbox-faults-*; do
		[[ -f "$dir/owner.pid" ]] || continue
		pid="$(<"$dir/owner.pid")"
		if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then continue; fi
		if [[ -f "$dir/pg/data/postmaster.pid" ]]; then
			sb_warn "stopping the PostgreSQL cluster a killed fault suite left in $dir"
			(cd / && if sb_is_root; then runuser -u postgres -- "$SIGNALBOX_PG_BINDIR/pg_ctl" -D "$dir/pg/data" -m immediate -w -t 30 stop; else
				"$SIGNALBOX_PG_BINDIR/pg_ctl" -D "$dir/pg/data" -m immediate -w -t 30 stop; fi) >/dev/null 2>&1 || true
		fi
	done
}

faults_main() {
	faults_env
	trap 'faults_sweep' EXIT
	# A Ctrl-C ends go test and the test binary at once (its processes die
	# with it); exiting through the EXIT trap then stops its cluster.
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
	export FAULTS_CONTACTS="${FAULTS_CONTACTS:-300}"
	local timeout="${FAULTS_TIMEOUT:-20m}"
	sb_log "go test -count=1 -v -timeout $timeout ./faults (FAULTS_CONTACTS=$FAULTS_CONTACTS)"
	go test -count=1 -v -timeout "$timeout" ./faults
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	faults_main "$@"
fi

#!/usr/bin/env bash
# What `make test` (and CI) runs:
#   1. PostgreSQL: DATABASE_URL from the environment or the project-local
#      cluster; its user must be allowed to CREATE DATABASE (each test binary
#      makes a throwaway database from it).
#   2. The pinned Temporal CLI in bin/temporal, exported as
#      SIGNALBOX_TEMPORAL_CLI for tests that start a dev server with
#      testsuite.StartDevServer (ExistingPath); no server is started here.
#   3. What the fault suite (faults/) runs: bin/signalbox built from this
#      checkout and PostgreSQL's server binaries, exported as SIGNALBOX_BIN
#      and SIGNALBOX_PG_BINDIR (scripts/faults.sh). In `go test ./...` it
#      runs at its smaller size, FAULTS_CONTACTS=60; make test-faults runs 300.
#   4. scripts/lint.sh: gofmt, go vet, staticcheck.
#   5. Every fuzz target (func FuzzXxx in a _test.go file) for FUZZTIME (10s).
#   6. The deployment checks (deploy/, a module of its own): the Compose
#      file through the Compose Spec loader, the Helm chart rendered by the
#      pinned helm (scripts/helm.sh builds it into bin/ once) and decoded
#      strictly into the Kubernetes API types. No network, no containers.
#   7. go test -count=1 -timeout 12m ./..., last, with go test's own output.
# The local cluster is stopped at the end, quietly, if this script started it.
#
#   scripts/test.sh          all of the above
#   scripts/test.sh --race   only step 6 (after 1 to 3), with the race detector
set -euo pipefail

# shellcheck source=scripts/postgres.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/postgres.sh"
# shellcheck source=scripts/temporal.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/temporal.sh"
# shellcheck source=scripts/faults.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/faults.sh"
# shellcheck source=scripts/helm.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/helm.sh"
cd "$SB_ROOT"

race=""
case "${1:-}" in
"") ;;
--race) race=1 ;;
*) sb_die "usage: scripts/test.sh [--race]" ;;
esac

cleanup() {
	local rc=$?
	trap - EXIT
	# A second Ctrl-C must not cut the clean-up short.
	trap 'sb_warn "still stopping the local PostgreSQL"' INT TERM HUP
	# Finish the clean-up even when stdout is a pipe whose reader is gone
	# (`make test | tee log` and Ctrl-C): no SIGPIPE, no early exit.
	trap '' PIPE
	set +e
	if [[ -n "${SIGNALBOX_PG_BINDIR:-}" ]]; then faults_sweep; fi
	if [[ -n "$PG_STARTED" ]] && ! pg_stop 2>/dev/null; then
		sb_warn "could not stop the local PostgreSQL (scripts/postgres.sh stop)"
		rc=1
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# require_createdb fails early, and clearly, when the tests could not make
# their databases.
require_createdb() {
	local psql ok
	psql="$(_pg_psql_bin)" || exit 1
	ok="$("$psql" -X -A -t -q -c \
		'SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user' "$DATABASE_URL")" ||
		sb_die "cannot query DATABASE_URL"
	[[ "$ok" == t ]] ||
		sb_die "the user of DATABASE_URL may not CREATE DATABASE, which the tests need (unset DATABASE_URL to use a local cluster)"
}

# fuzz_targets prints "DIR NAME" for every fuzz target in the module.
fuzz_targets() {
	local file
	{ grep -rlE --include='*_test.go' --exclude-dir=.git --exclude-dir=.data --exclude-dir=bin \
		--exclude-dir=testdata --exclude-dir=vendor --exclude-dir=node_modules '^func Fuzz' . || true; } |
		sort | while IFS= read -r file; do
		grep -oE '^func Fuzz([A-Z0-9_][A-Za-z0-9_]*)?\(' "$file" |
			sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\($/\1/' |
			while IFS= read -r name; do
				printf '%s %s\n' "$(dirname -- "$file")" "$name"
			done
	done | sort -u
}

run_fuzz() {
	local fuzztime="${FUZZTIME:-10s}" dir name n=0
	while IFS=' ' read -r dir name; do
		[[ -n "$name" ]] || continue
		n=$((n + 1))
		sb_log "fuzz $name in $dir for $fuzztime"
		local corpus="$dir/testdata/fuzz/$name" before after
		before="$(ls "$corpus" 2>/dev/null || true)"
		if go test -run='^$' -fuzz="^$name\$" -fuzztime="$fuzztime" "$dir"; then
			continue
		fi
		after="$(ls "$corpus" 2>/dev/null || true)"
		if [[ "$before" != "$after" ]]; then
			sb_log "fuzz $name found a failing input: $corpus"
			return 1
		fi
		# Go's fuzzing coordinator can fail with "context deadline
		# exceeded" at the end of -fuzztime when a loaded machine keeps a
		# worker from stopping in time; it writes no failing input then.
		# Such a run gets one more try; a real finding writes its input.
		sb_log "fuzz $name failed without a failing input (the coordinator's deadline race); once more"
		go test -run='^$' -fuzz="^$name\$" -fuzztime="$fuzztime" "$dir"
	done < <(fuzz_targets)
	if ((n == 0)); then sb_log "no fuzz targets yet"; fi
}

pg_ensure
require_createdb
temporal_build
export SIGNALBOX_TEMPORAL_CLI="$SB_BIN/temporal"
faults_env
export FAULTS_CONTACTS="${FAULTS_CONTACTS:-60}"

if [[ -n "$race" ]]; then
	sb_log "go test -race -count=1 -timeout 25m ./..."
	go test -race -count=1 -timeout 25m ./...
	exit 0
fi

scripts/lint.sh
run_fuzz
helm_build
sb_log "deployment checks: go test -count=1 ./... in deploy/"
(cd deploy && SIGNALBOX_HELM="$SB_BIN/helm" go test -count=1 -timeout 5m ./...)
# The whole suite runs last so that its summary closes the output (CI reads
# go test's closing lines).
sb_log "go test -count=1 -timeout 12m ./..."
go test -count=1 -timeout 12m ./...

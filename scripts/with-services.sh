#!/usr/bin/env bash
# Run a command with PostgreSQL (and optionally Temporal) available, then stop
# whatever this script started, and nothing else.
#
#   scripts/with-services.sh [--temporal] [--interactive] [--] COMMAND [ARG...]
#
# The command gets DATABASE_URL (scripts/postgres.sh) and, with --temporal,
# TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and (for the dev server it starts)
# TEMPORAL_UI_URL. A TEMPORAL_ADDRESS already set in the environment is used
# as it is and no dev server is started.
#
# The command runs in its own session, so a Ctrl-C in the terminal reaches it
# once, as the SIGTERM this script forwards on INT, TERM or HUP; then the
# Temporal dev server and the PostgreSQL cluster stop, if this script started
# them. --interactive instead runs the command in the foreground with the
# terminal (for psql): Ctrl-C then belongs to the command.
set -euo pipefail

# shellcheck source=scripts/postgres.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/postgres.sh"
# shellcheck source=scripts/temporal.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/temporal.sh"

want_temporal=""
interactive=""
while (($#)); do
	case "$1" in
	--temporal) want_temporal=1 ;;
	--interactive) interactive=1 ;;
	--)
		shift
		break
		;;
	-*) sb_die "unknown option $1" ;;
	*) break ;;
	esac
	shift
done
(($#)) || sb_die "usage: scripts/with-services.sh [--temporal] [--interactive] [--] COMMAND [ARG...]"

child=""
name="$1"

# cleanup stops the command, then the services this script started, in the
# reverse order of their start.
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
	local rc=$? i
	trap - EXIT
	# A second Ctrl-C (or a signal to the whole process group, as timeout
	# sends) must not cut the clean-up short and leave services running.
	trap 'sb_warn "still stopping what this started; every wait here is bounded"' INT TERM HUP
	# Finish the clean-up even when stdout is a pipe whose reader is gone
	# (`make run | tee log` and Ctrl-C): no SIGPIPE, no early exit.
	trap '' PIPE
	set +e
	if [[ -n "$child" ]] && sb_alive "$child"; then
		sb_log "stopping $name"
		kill -TERM "$child" 2>/dev/null || true
		for ((i = 0; i < 150; i++)); do
			sb_alive "$child" || break
			sleep 0.2
		done
		if sb_alive "$child"; then
			sb_warn "$name did not stop within 30s; killing it"
			kill -KILL "$child" 2>/dev/null || true
		fi
		wait "$child" 2>/dev/null || true
	fi
	if [[ -n "$TEMPORAL_STARTED" ]]; then temporal_stop || rc=1; fi
	if [[ -n "$PG_STARTED" ]]; then pg_stop || rc=1; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

pg_ensure
if [[ -n "$want_temporal" ]]; then
	if [[ -n "${TEMPORAL_ADDRESS:-}" ]]; then
		sb_log "using TEMPORAL_ADDRESS from the environment: $TEMPORAL_ADDRESS (no dev server started)"
	else
		temporal_start
		export TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT"
		export TEMPORAL_UI_URL="http://127.0.0.1:$TEMPORAL_UI_PORT"
	fi
	export TEMPORAL_NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
fi

{
	echo
	echo "  PostgreSQL      $(_pg_redact "$DATABASE_URL")"
	if [[ -n "$want_temporal" ]]; then
		echo "  Temporal        $TEMPORAL_ADDRESS (namespace $TEMPORAL_NAMESPACE)"
		if [[ -n "${TEMPORAL_UI_URL:-}" ]]; then echo "  Temporal Web UI $TEMPORAL_UI_URL"; fi
	fi
	echo
} >&2

if [[ -n "$interactive" ]]; then
	# A no-op trap: Ctrl-C goes to the command (psql cancels its query) and
	# this script carries on to clean up when the command exits.
	trap ':' INT
	set +e
	"$@"
	rc=$?
	set -e
	exit "$rc"
fi

setsid "$@" &
child=$!
set +e
wait "$child"
rc=$?
set -e
child=""
exit "$rc"

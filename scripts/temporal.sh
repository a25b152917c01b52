#!/usr/bin/env bash
# The Temporal CLI and its development server.
#
#   scripts/temporal.sh build    build the pinned CLI into bin/temporal
#   scripts/temporal.sh start    start the dev server in the background (or reuse it)
#   scripts/temporal.sh status   say whether it runs
#   scripts/temporal.sh stop     stop the dev server that start started
#
# Sourced (as run.sh and test.sh do), it only defines functions: temporal_start
# sets TEMPORAL_STARTED=1 when it started the server, so the caller can stop
# exactly what it started with temporal_stop.
#
# The CLI version is TEMPORAL_CLI_VERSION, pinned in the Makefile (make passes
# it on; run directly, the script reads the Makefile). The server keeps its
# state in .data/temporal.db (SQLite, WAL), logs to .data/temporal.log and
# writes its pid to .data/temporal.pid. It listens on 127.0.0.1 only:
# TEMPORAL_PORT (gRPC, default 7233) and TEMPORAL_UI_PORT (Web UI, default
# 8233). The search attributes SignalboxWorkspace, SignalboxAutomation and
# SignalboxContact (Keyword) are registered at start. TEMPORAL_START_TIMEOUT
# (seconds, default 90) bounds the wait for it to become healthy.

# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

TEMPORAL_CLI="$SB_BIN/temporal"
TEMPORAL_PIDFILE="$SB_DATA/temporal.pid"
TEMPORAL_LOG="$SB_DATA/temporal.log"
TEMPORAL_DB="$SB_DATA/temporal.db"
TEMPORAL_STARTED="${TEMPORAL_STARTED:-}"

# _temporal_ports sets TEMPORAL_PORT and TEMPORAL_UI_PORT to their defaults.
_temporal_ports() {
	TEMPORAL_PORT="${TEMPORAL_PORT:-7233}"
	TEMPORAL_UI_PORT="${TEMPORAL_UI_PORT:-8233}"
	[[ "$TEMPORAL_PORT" =~ ^[0-9]+$ ]] || sb_die "TEMPORAL_PORT=$TEMPORAL_PORT is not a port number"
	[[ "$TEMPORAL_UI_PORT" =~ ^[0-9]+$ ]] || sb_die "TEMPORAL_UI_PORT=$TEMPORAL_UI_PORT is not a port number"
}

# temporal_build builds the pinned CLI into bin/temporal unless it is there.
# The version is also stamped into the binary so `temporal --version` shows it.
temporal_build() {
	local version
	version="$(sb_makefile_var TEMPORAL_CLI_VERSION)" || exit 1
	version="${version#v}"
	sb_go_install_pinned temporal github.com/temporalio/cli github.com/temporalio/cli/cmd/temporal \
		"v$version" -ldflags "-X github.com/temporalio/cli/temporalcli.Version=$version"
}

# _temporal_pid prints the pid of the dev server that start started, if it
# still runs (a stale pid file or a reused pid is ignored).
_temporal_pid() {
	local pid
	[[ -f "$TEMPORAL_PIDFILE" ]] || return 1
	pid="$(<"$TEMPORAL_PIDFILE")"
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	sb_alive "$pid" || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'server start-dev' || return 1
	echo "$pid"
}

# _temporal_adopt_ports sets TEMPORAL_PORT and TEMPORAL_UI_PORT from the
# command line of the running server $1, which may have been started with
# other values than this shell's.
_temporal_adopt_ports() {
	local -a args
	local i
	mapfile -d '' args <"/proc/$1/cmdline" || return 0
	for ((i = 0; i < ${#args[@]} - 1; i++)); do
		case "${args[i]}" in
		--port) TEMPORAL_PORT="${args[i + 1]}" ;;
		--ui-port) TEMPORAL_UI_PORT="${args[i + 1]}" ;;
		esac
	done
}

# temporal_healthy succeeds when the frontend answers SERVING.
temporal_healthy() {
	"$TEMPORAL_CLI" operator cluster health --address "127.0.0.1:$TEMPORAL_PORT" \
		--command-timeout 3s 2>/dev/null | grep -q SERVING
}

# _temporal_wait_healthy waits for the server started as pid $1.
_temporal_wait_healthy() {
	local pid="$1" timeout="${TEMPORAL_START_TIMEOUT:-90}" start=$SECONDS
	until temporal_healthy; do
		if ! sb_alive "$pid"; then
			tail -n 30 "$TEMPORAL_LOG" >&2
			sb_die "the Temporal dev server exited (log: .data/temporal.log)"
		fi
		if ((SECONDS - start >= timeout)); then
			tail -n 30 "$TEMPORAL_LOG" >&2
			sb_die "the Temporal dev server was not healthy after ${timeout}s (log: .data/temporal.log)"
		fi
		sleep 0.5
	done
}

# temporal_start starts the dev server in the background, or reuses the one
# already running from this checkout.
temporal_start() {
	local pid
	_temporal_ports
	temporal_build
	if pid="$(_temporal_pid)"; then
		_temporal_adopt_ports "$pid"
		sb_log "Temporal dev server already running (pid $pid, 127.0.0.1:$TEMPORAL_PORT)"
		_temporal_wait_healthy "$pid"
		return 0
	fi
	! sb_port_busy "$TEMPORAL_PORT" ||
		sb_die "port $TEMPORAL_PORT is in use by another server; stop it or set TEMPORAL_PORT (or TEMPORAL_ADDRESS for make run)"
	! sb_port_busy "$TEMPORAL_UI_PORT" ||
		sb_die "port $TEMPORAL_UI_PORT is in use by another server; stop it or set TEMPORAL_UI_PORT"
	mkdir -p "$SB_DATA"
	rm -f "$TEMPORAL_PIDFILE"
	sb_log "starting the Temporal dev server on 127.0.0.1:$TEMPORAL_PORT (log: .data/temporal.log)"
	printf '\n--- %s start-dev\n' "$(date -Is)" >>"$TEMPORAL_LOG"
	# setsid: a Ctrl-C in the terminal must not reach the server; whoever
	# started it stops it, after the processes that use it.
	# Dynamic config values are JSON; search attributes are NAME=TYPE.
	# shellcheck disable=SC2016 # $$ and $@ belong to the inner bash
	setsid bash -c 'echo $$ >"$0" && exec "$@"' "$TEMPORAL_PIDFILE" \
		"$TEMPORAL_CLI" server start-dev \
		--ip 127.0.0.1 --port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT" \
		--db-filename "$TEMPORAL_DB" --namespace default \
		--sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal \
		--dynamic-config-value history.transferProcessorMaxPollRPS=1000 \
		--dynamic-config-value matching.numTaskqueueReadPartitions=1 \
		--dynamic-config-value matching.numTaskqueueWritePartitions=1 \
		--search-attribute SignalboxWorkspace=Keyword \
		--search-attribute SignalboxAutomation=Keyword \
		--search-attribute SignalboxContact=Keyword \
		--log-level warn \
		</dev/null >>"$TEMPORAL_LOG" 2>&1 &
	pid=$!
	TEMPORAL_STARTED=1
	_temporal_wait_healthy "$pid"
	sb_log "Temporal dev server ready: 127.0.0.1:$TEMPORAL_PORT, Web UI http://127.0.0.1:$TEMPORAL_UI_PORT"
}

# temporal_stop stops the dev server recorded in .data/temporal.pid.
temporal_stop() {
	local pid i
	if ! pid="$(_temporal_pid)"; then
		rm -f "$TEMPORAL_PIDFILE"
		TEMPORAL_STARTED=""
		return 0
	fi
	sb_log "stopping the Temporal dev server (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		sb_alive "$pid" || break
		sleep 0.2
	done
	if sb_alive "$pid"; then
		sb_warn "the Temporal dev server did not stop in 20s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true # reap it when this shell started it
	rm -f "$TEMPORAL_PIDFILE"
	TEMPORAL_STARTED=""
}

temporal_main() {
	case "${1:-}" in
	build) temporal_build ;;
	start) temporal_start ;;
	stop) temporal_stop ;;
	status)
		_temporal_ports
		if pid="$(_temporal_pid)"; then
			_temporal_adopt_ports "$pid"
			echo "running (pid $pid): 127.0.0.1:$TEMPORAL_PORT, Web UI http://127.0.0.1:$TEMPORAL_UI_PORT"
		else
			echo "not running"
		fi
		;;
	-h | --help | help) sed -n '2,7s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" ;;
	*)
		sed -n '2,7s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
		exit 2
		;;
	esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	set -euo pipefail
	temporal_main "$@"
fi

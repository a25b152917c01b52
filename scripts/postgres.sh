#!/usr/bin/env bash
# PostgreSQL for development and tests.
#
#   scripts/postgres.sh [start]   ensure a database, print DATABASE_URL=...
#   scripts/postgres.sh env       ensure a database, print `export DATABASE_URL='...'` (for eval)
#   scripts/postgres.sh status    say whether the project-local cluster runs
#   scripts/postgres.sh stop      stop the project-local cluster
#   scripts/postgres.sh destroy   stop it and delete its data
#
# Sourced (as run.sh and test.sh do), it only defines functions: pg_ensure
# exports DATABASE_URL and sets PG_STARTED=1 when it started the cluster, so
# the caller can stop exactly what it started with pg_stop.
#
# Which database:
# - DATABASE_URL set in the environment: used as it is, after a connection
#   check. Nothing is started and `stop` never touches that server.
# - Otherwise a project-local cluster, run with Debian's initdb/pg_ctl (never
#   the distro's own cluster or pg_ctlcluster): trust auth, user postgres,
#   listening on 127.0.0.1 only, port SIGNALBOX_PG_PORT (default 55432; when
#   that default is taken by another server the next free port is used),
#   database signalbox. fsync and synchronous_commit stay on: durability is a
#   product promise, so tests run with it.
#
# Layout of the cluster home, .data/postgres:
#   data/          PGDATA
#   run/           the unix socket directory
#   postgres.log   server log (.data/postgres.log links to it)
#
# initdb and postgres refuse to run as root, so as root they run as the
# `postgres` OS user that Debian's package creates, and the cluster home is
# owned by that user. That user must be able to reach the home: a clone under
# /root (mode 700) is not reachable, and neither is any path whose socket name
# would pass the kernel's 107-byte limit. In those cases the home lives outside
# the repository, in ~postgres/signalbox-<hash of the repo path> when root
# (persistent) or /tmp/signalbox-pg-<uid>-<hash> otherwise, and .data/postgres
# is a symlink to it. `destroy` (make clean) removes that directory too.

# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

PG_DEFAULT_PORT=55432
PG_DATABASE=signalbox
PG_LINK="$SB_DATA/postgres"
PG_STARTED="${PG_STARTED:-}"

# _pg_run runs a server-side command as the cluster's OS user, from / so that
# an unreadable working directory (a clone under /root) does not matter.
_pg_run() {
	if sb_is_root; then
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

# _pg_owner is the OS user that owns and runs the cluster.
_pg_owner() {
	if sb_is_root; then echo postgres; else id -un; fi
}

# _pg_bindir prints Debian's server binary directory: the one of the given
# major version, or the highest installed one.
_pg_bindir() {
	local major="${1:-}" dir
	if [[ -n "$major" ]]; then
		dir="/usr/lib/postgresql/$major/bin"
		[[ -x "$dir/initdb" ]] || return 1
		echo "$dir"
		return 0
	fi
	dir="$(for d in /usr/lib/postgresql/*/bin; do [[ -x "$d/initdb" ]] && echo "$d"; done | sort -V | tail -n1)"
	[[ -n "$dir" ]] || return 1
	echo "$dir"
}

# _pg_server_bindir finds the server binaries, installing Debian's postgresql
# package when there are none.
_pg_server_bindir() {
	local dir
	if dir="$(_pg_bindir "$@")"; then
		echo "$dir"
		return 0
	fi
	if [[ -n "${1:-}" ]]; then
		sb_die "the cluster in $PG_LINK was made by PostgreSQL $1, whose binaries are not installed (apt-get install postgresql-$1, or make clean)"
	fi
	sb_apt_install postgresql
	_pg_bindir || sb_die "no initdb under /usr/lib/postgresql/*/bin even after installing postgresql"
}

# _pg_psql_bin prints a psql client, installing one when there is none.
_pg_psql_bin() {
	local p
	for p in "$(command -v psql 2>/dev/null)" /usr/lib/postgresql/*/bin/psql; do
		if [[ -n "$p" && -x "$p" ]]; then
			echo "$p"
			return 0
		fi
	done
	sb_apt_install postgresql-client
	command -v psql || sb_die "psql is still missing after installing postgresql-client"
}

# _pg_redact hides the password of a connection URL for logs.
_pg_redact() {
	sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"
}

# _pg_make_home creates an external cluster home, refusing a directory that
# someone else made (it may sit in a world-writable /tmp).
_pg_make_home() {
	local dir="$1" owner
	owner="$(_pg_owner)"
	if [[ -d "$dir" ]]; then
		[[ "$(stat -c %U "$dir")" == "$owner" ]] ||
			sb_die "$dir exists but is not owned by $owner; remove it or set DATABASE_URL"
		return 0
	fi
	mkdir -p "$(dirname -- "$dir")"
	mkdir -m 700 "$dir" || sb_die "cannot create $dir"
	if sb_is_root; then chown postgres:postgres "$dir"; fi
}

# _pg_external_home prints where the cluster lives when the repository cannot
# hold it, keyed by a hash of the repository path.
_pg_external_home() {
	local hash home
	hash="$(printf '%s' "$SB_ROOT" | sha256sum | cut -c1-12)"
	if sb_is_root; then
		home="$(getent passwd postgres | cut -d: -f6)"
		if [[ -n "$home" && -d "$home" && "$(stat -c %U "$home")" == postgres ]]; then
			echo "$home/signalbox-$hash"
			return 0
		fi
		echo "/tmp/signalbox-pg-$hash"
	else
		echo "/tmp/signalbox-pg-$(id -u)-$hash"
	fi
}

# _pg_home_usable_in_repo tells whether the cluster can live in .data/postgres.
_pg_home_usable_in_repo() {
	# Socket path: <home>/run/.s.PGSQL.<5 digits> must fit in sun_path (108).
	local sock="$PG_LINK/run/.s.PGSQL.55432"
	if ((${#sock} > 107)); then
		PG_WHY_EXTERNAL="its unix socket path would pass 107 bytes"
		return 1
	fi
	if sb_is_root && ! runuser -u postgres -- test -x "$SB_DATA" 2>/dev/null; then
		PG_WHY_EXTERNAL="the postgres OS user cannot reach it"
		return 1
	fi
	return 0
}

# _pg_resolve_home sets PG_HOME, PGDATA_DIR, PG_SOCKDIR and PG_LOGFILE,
# creating the cluster home when create=1.
_pg_resolve_home() {
	local create="$1" target
	PG_HOME=""
	if [[ -L "$PG_LINK" ]]; then
		target="$(readlink -- "$PG_LINK")"
		if [[ ! -d "$target" ]]; then
			[[ "$create" == 1 ]] || return 1
			sb_warn "the cluster directory $target is gone (was /tmp cleared?): making a new, empty cluster"
			_pg_make_home "$target"
		fi
		PG_HOME="$target"
	elif [[ -d "$PG_LINK" ]]; then
		PG_HOME="$PG_LINK"
	elif [[ -e "$PG_LINK" ]]; then
		sb_die "$PG_LINK exists but is not a directory"
	else
		[[ "$create" == 1 ]] || return 1
		mkdir -p "$SB_DATA"
		if _pg_home_usable_in_repo; then
			mkdir -m 700 "$PG_LINK"
			if sb_is_root; then chown postgres:postgres "$PG_LINK"; fi
			PG_HOME="$PG_LINK"
		else
			target="$(_pg_external_home)"
			sb_log "the cluster cannot live in $SB_DATA ($PG_WHY_EXTERNAL); keeping it in $target (.data/postgres links to it)"
			_pg_make_home "$target"
			ln -s "$target" "$PG_LINK"
			PG_HOME="$target"
		fi
	fi
	PGDATA_DIR="$PG_HOME/data"
	PG_SOCKDIR="$PG_HOME/run"
	PG_LOGFILE="$PG_HOME/postgres.log"
	if [[ "$create" == 1 ]]; then
		# The server (pg_ctl -l) appends to the log as the cluster's owner.
		touch "$PG_LOGFILE"
		if sb_is_root; then chown postgres:postgres "$PG_LOGFILE"; fi
		if [[ ! -e "$SB_DATA/postgres.log" && ! -L "$SB_DATA/postgres.log" ]]; then
			ln -s postgres/postgres.log "$SB_DATA/postgres.log"
		fi
	fi
	return 0
}

# _pg_initdb makes a new cluster in PGDATA_DIR.
_pg_initdb() {
	local bindir="$1" locale=C
	if locale -a 2>/dev/null | grep -qix 'c\.utf-\{0,1\}8'; then locale=C.UTF-8; fi
	sb_log "creating a PostgreSQL cluster in $PGDATA_DIR"
	_pg_run "$bindir/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust --data-checksums \
		--encoding=UTF8 --locale="$locale" >>"$PG_LOGFILE" 2>&1 ||
		{
			tail -n 20 "$PG_LOGFILE" >&2
			sb_die "initdb failed (log: $PG_LOGFILE)"
		}
	cat >>"$PGDATA_DIR/postgresql.conf" <<-'EOF'

		# Signalbox development cluster (scripts/postgres.sh). The port and the
		# socket directory are given on the command line at every start.
		listen_addresses = '127.0.0.1'
		max_connections = 200
		shared_buffers = 256MB
		# Durability is a product promise: never turn these off.
		fsync = on
		synchronous_commit = on
		full_page_writes = on
	EOF
}

# _pg_running_port prints the port of the running cluster, or fails.
_pg_running_port() {
	local bindir="$1"
	_pg_run "$bindir/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1 || return 1
	sed -n 4p "$PGDATA_DIR/postmaster.pid"
}

# _pg_pick_port prints the port to start on.
_pg_pick_port() {
	local port="${SIGNALBOX_PG_PORT:-}" p
	if [[ -n "$port" ]]; then
		[[ "$port" =~ ^[0-9]+$ ]] || sb_die "SIGNALBOX_PG_PORT=$port is not a port number"
		! sb_port_busy "$port" || sb_die "port $port (SIGNALBOX_PG_PORT) is already in use by another server"
		echo "$port"
		return 0
	fi
	for ((p = PG_DEFAULT_PORT; p < PG_DEFAULT_PORT + 20; p++)); do
		if ! sb_port_busy "$p"; then
			((p == PG_DEFAULT_PORT)) || sb_warn "port $PG_DEFAULT_PORT is taken by another server (another checkout's cluster?); using $p"
			echo "$p"
			return 0
		fi
	done
	sb_die "ports $PG_DEFAULT_PORT-$((PG_DEFAULT_PORT + 19)) are all in use; set SIGNALBOX_PG_PORT or DATABASE_URL"
}

# _pg_ensure_local ensures the project-local cluster runs and has the
# database; it sets PG_PORT (and PG_STARTED=1 when it started the server).
_pg_ensure_local() {
	local bindir major="" port
	if sb_is_root; then
		getent passwd postgres >/dev/null ||
			sb_die "running as root needs the 'postgres' OS user (Debian's postgresql package creates it)"
	fi
	_pg_resolve_home 1
	if [[ -f "$PGDATA_DIR/PG_VERSION" ]]; then
		major="$(cat "$PGDATA_DIR/PG_VERSION")"
	fi
	bindir="$(_pg_server_bindir "$major")" || exit 1
	if [[ -e "$PGDATA_DIR" && "$(stat -c %U "$PGDATA_DIR")" != "$(_pg_owner)" ]]; then
		sb_die "$PGDATA_DIR belongs to $(stat -c %U "$PGDATA_DIR"), not $(_pg_owner): run as that user, or make clean"
	fi
	[[ -f "$PGDATA_DIR/PG_VERSION" ]] || _pg_initdb "$bindir"

	if port="$(_pg_running_port "$bindir")"; then
		if [[ -n "${SIGNALBOX_PG_PORT:-}" && "$port" != "$SIGNALBOX_PG_PORT" ]]; then
			sb_warn "the local cluster already runs on port $port, not SIGNALBOX_PG_PORT=$SIGNALBOX_PG_PORT; using $port"
		fi
		sb_log "PostgreSQL already running (port $port, data $PGDATA_DIR)"
	else
		port="$(_pg_pick_port)" || exit 1
		[[ "$PG_SOCKDIR" != *"'"* ]] || sb_die "the cluster path may not contain a single quote: $PG_SOCKDIR"
		_pg_run mkdir -p -m 700 "$PG_SOCKDIR"
		sb_log "starting PostgreSQL on 127.0.0.1:$port (log: .data/postgres.log)"
		_pg_run "$bindir/pg_ctl" -D "$PGDATA_DIR" -l "$PG_LOGFILE" -w -t 120 \
			-o "-p $port -k '$PG_SOCKDIR'" start >/dev/null ||
			{
				tail -n 20 "$PG_LOGFILE" >&2
				sb_die "PostgreSQL did not start (log: $PG_LOGFILE)"
			}
		PG_STARTED=1
	fi
	# shellcheck disable=SC2034 # for scripts that source this file
	PG_PORT="$port"

	# A server that another run has just started may still be recovering.
	local i
	for ((i = 0; i < 120; i++)); do
		"$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres && break
		sleep 0.5
	done

	local psql=("$bindir/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1)
	if [[ -z "$("${psql[@]}" -Atc "SELECT 1 FROM pg_database WHERE datname = '$PG_DATABASE'")" ]]; then
		sb_log "creating database $PG_DATABASE"
		"${psql[@]}" -c "CREATE DATABASE $PG_DATABASE" >/dev/null || sb_die "cannot create database $PG_DATABASE"
	fi
	DATABASE_URL="postgres://postgres@127.0.0.1:$port/$PG_DATABASE?sslmode=disable"
}

# pg_ensure makes a database available and exports DATABASE_URL.
# SIGNALBOX_PG_LOCAL_URL marks a DATABASE_URL that pg_ensure itself exported
# for the local cluster, so that nested scripts (or a shell that evaluated
# `scripts/postgres.sh env`) ensure that cluster again instead of taking it
# for a server of the user's.
pg_ensure() {
	if [[ -n "${DATABASE_URL:-}" && "$DATABASE_URL" != "${SIGNALBOX_PG_LOCAL_URL:-}" ]]; then
		local psql out
		psql="$(_pg_psql_bin)" || exit 1
		if ! out="$(PGCONNECT_TIMEOUT=5 "$psql" -X -A -t -q -c 'SELECT 1' "$DATABASE_URL" 2>&1)"; then
			sb_die "DATABASE_URL=$(_pg_redact "$DATABASE_URL") is not reachable (unset it to use a project-local cluster): $out"
		fi
		sb_log "using DATABASE_URL from the environment: $(_pg_redact "$DATABASE_URL")"
		export DATABASE_URL
		return 0
	fi
	mkdir -p "$SB_DATA"
	local lock
	exec {lock}>>"$SB_DATA/.postgres.lock"
	flock -w 300 "$lock" || sb_die "another scripts/postgres.sh holds .data/.postgres.lock"
	# The lock's fd must not leak into the postmaster (it would hold the lock
	# for as long as the server runs), so the work runs with it closed.
	_pg_ensure_local {lock}>&-
	exec {lock}>&-
	export DATABASE_URL
	export SIGNALBOX_PG_LOCAL_URL="$DATABASE_URL"
	sb_log "DATABASE_URL=$DATABASE_URL"
}

# pg_stop stops the project-local cluster if it runs. It never touches the
# server behind an environment DATABASE_URL, nor the distro's cluster.
pg_stop() {
	_pg_resolve_home 0 || {
		sb_log "no local PostgreSQL cluster"
		return 0
	}
	[[ -f "$PGDATA_DIR/PG_VERSION" ]] || return 0
	local bindir
	bindir="$(_pg_bindir "$(cat "$PGDATA_DIR/PG_VERSION")")" || return 0
	if _pg_running_port "$bindir" >/dev/null; then
		sb_log "stopping the local PostgreSQL"
		if ! _pg_run "$bindir/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >/dev/null; then
			printf 'error: could not stop PostgreSQL (data %s)\n' "$PGDATA_DIR" >&2
			return 1
		fi
	fi
	PG_STARTED=""
}

# pg_status reports on the project-local cluster.
pg_status() {
	local bindir port
	if ! _pg_resolve_home 0 || [[ ! -f "$PGDATA_DIR/PG_VERSION" ]]; then
		echo "no local PostgreSQL cluster"
		return 0
	fi
	bindir="$(_pg_bindir "$(cat "$PGDATA_DIR/PG_VERSION")")" || {
		echo "local cluster in $PGDATA_DIR (its PostgreSQL is not installed)"
		return 0
	}
	if port="$(_pg_running_port "$bindir")"; then
		echo "running: postgres://postgres@127.0.0.1:$port/$PG_DATABASE?sslmode=disable (data $PGDATA_DIR)"
	else
		echo "stopped (data $PGDATA_DIR)"
	fi
}

# pg_destroy stops the local cluster and deletes its data.
pg_destroy() {
	pg_stop
	if _pg_resolve_home 0; then
		sb_log "deleting the local cluster in $PG_HOME"
		rm -rf -- "$PG_HOME"
	fi
	rm -f -- "$PG_LINK" "$SB_DATA/postgres.log" "$SB_DATA/.postgres.lock"
}

pg_main() {
	case "${1:-start}" in
	start)
		pg_ensure
		printf 'DATABASE_URL=%s\n' "$(_pg_redact "$DATABASE_URL")"
		;;
	env)
		pg_ensure
		printf "export DATABASE_URL='%s'\n" "$DATABASE_URL"
		if [[ "$DATABASE_URL" == "${SIGNALBOX_PG_LOCAL_URL:-}" ]]; then
			printf "export SIGNALBOX_PG_LOCAL_URL='%s'\n" "$DATABASE_URL"
		fi
		;;
	stop) pg_stop ;;
	status) pg_status ;;
	destroy) pg_destroy ;;
	-h | --help | help) sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" ;;
	*)
		sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
		exit 2
		;;
	esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	set -euo pipefail
	pg_main "$@"
fi

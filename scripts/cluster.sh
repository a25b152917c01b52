#!/usr/bin/env bash
# A real Temporal cluster for make test-cluster and make bench-cluster: the
# server and its SQL tool built from the Go module proxy at the pinned
# TEMPORAL_SERVER_VERSION (Makefile) into bin/temporal-server and
# bin/temporal-sql-tool, reused once built.
#
#   scripts/cluster.sh build    build them (the first build takes minutes)
#
# Sourced, it defines cluster_build, cluster_env and cluster_run; cluster_env
# exports what cmd/signalbox-cluster reads (TEMPORAL_SERVER_BIN,
# TEMPORAL_SQL_TOOL, TEMPORAL_SCHEMA_DIR: the versioned PostgreSQL schemas
# inside the module).

# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

_cluster_version() {
	local v
	v="$(sb_makefile_var TEMPORAL_SERVER_VERSION)" || exit 1
	echo "v${v#v}"
}

# _cluster_built succeeds when bin/$1 was built from the server module at $2.
_cluster_built() {
	[[ -x "$SB_BIN/$1" ]] && go version -m "$SB_BIN/$1" 2>/dev/null |
		awk -v v="$2" '$1 == "mod" && $2 == "go.temporal.io/server" && $3 == v { found = 1 } END { exit !found }'
}

# cluster_build builds temporal-server and temporal-sql-tool unless built.
cluster_build() {
	local version tmp start
	version="$(_cluster_version)"
	if _cluster_built temporal-server "$version" && _cluster_built temporal-sql-tool "$version"; then
		return 0
	fi
	sb_log "building temporal-server and temporal-sql-tool $version into bin/ (the first build takes 5 to 15 minutes)"
	mkdir -p "$SB_BIN"
	tmp="$(mktemp -d "$SB_BIN/.temporal-server.XXXXXX")"
	start=$SECONDS
	GOBIN="$tmp" go install "go.temporal.io/server/cmd/server@$version" "go.temporal.io/server/cmd/tools/sql@$version" || {
		rm -rf "$tmp"
		sb_die "go install go.temporal.io/server@$version failed"
	}
	mv -f "$tmp/server" "$SB_BIN/temporal-server"
	mv -f "$tmp/sql" "$SB_BIN/temporal-sql-tool"
	rm -rf "$tmp"
	sb_log "built temporal-server and temporal-sql-tool in $((SECONDS - start))s"
}

# cluster_env exports the binaries and the schema directory.
cluster_env() {
	local version dir
	version="$(_cluster_version)"
	dir="$(cd "$SB_ROOT" && GOFLAGS=-mod=mod go mod download -json "go.temporal.io/server@$version" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
	[[ -d "$dir/schema/postgresql/v12" ]] || sb_die "no schema/postgresql/v12 in go.temporal.io/server@$version ($dir)"
	export TEMPORAL_SERVER_BIN="$SB_BIN/temporal-server" TEMPORAL_SQL_TOOL="$SB_BIN/temporal-sql-tool"
	export TEMPORAL_SCHEMA_DIR="$dir/schema/postgresql/v12"
}

# cluster_run MODE is what make test-cluster (MODE test) and make
# bench-cluster (MODE bench) run: PostgreSQL, the Temporal builds,
# bin/signalbox, bin/signalbox-cluster (and for bench bin/signalbox-actbench)
# built from this checkout, then `signalbox-cluster MODE`; the local
# PostgreSQL is stopped at the end if this started it. The caller sources
# scripts/postgres.sh and scripts/temporal.sh.
cluster_run() {
	local mode="$1"
	_cluster_cleanup() {
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
	trap _cluster_cleanup EXIT
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
	if [[ "$mode" == bench ]]; then
		sb_log "go build bin/signalbox-actbench"
		go build -o "$SB_BIN/signalbox-actbench" ./cmd/signalbox-actbench
		export SIGNALBOX_ACTBENCH="$SB_BIN/signalbox-actbench"
	fi
	"$SB_BIN/signalbox-cluster" "$mode"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	set -euo pipefail
	case "${1:-}" in
	build) cluster_build ;;
	*)
		sed -n '2,8s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
		exit 2
		;;
	esac
fi

# shellcheck shell=bash
# Helpers shared by the scripts in this directory. Source it; it runs nothing.
#
# Every script logs to stderr so that a script's stdout carries only what a
# caller may capture (for example `scripts/postgres.sh env`).

# Guard against being sourced twice (postgres.sh and temporal.sh both load it).
if [[ -n "${SB_LIB_LOADED:-}" ]]; then
	return 0
fi
SB_LIB_LOADED=1

# runuser, and Debian's PostgreSQL tools, live in the sbin directories, which
# a non-login shell's PATH may lack.
case ":$PATH:" in
*:/usr/sbin:*) ;;
*) PATH="$PATH:/usr/sbin:/sbin" ;;
esac

# SB_ROOT is the repository root: the parent of this scripts/ directory.
SB_ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
# SB_DATA holds everything local services keep between runs (git-ignored).
# shellcheck disable=SC2034 # used by the scripts that source this file
SB_DATA="$SB_ROOT/.data"
# SB_BIN holds the binaries that the tooling builds (git-ignored).
SB_BIN="$SB_ROOT/bin"

sb_log() { printf '==> %s\n' "$*" >&2; }
sb_warn() { printf 'warning: %s\n' "$*" >&2; }
sb_die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

sb_is_root() { [[ "$(id -u)" == 0 ]]; }

# sb_as_root runs a command as root: directly when we are root, through sudo
# otherwise (it may prompt for a password when there is a terminal).
sb_as_root() {
	if sb_is_root; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		if [[ -t 0 ]]; then
			sudo "$@"
		else
			sudo -n "$@"
		fi
	else
		sb_die "need root to run '$*' and sudo is not installed; run it as root once"
	fi
}

# sb_apt_install installs Debian packages non-interactively.
sb_apt_install() {
	sb_log "installing Debian packages: $*"
	sb_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 ||
		sb_die "apt-get update failed"
	sb_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2 ||
		sb_die "apt-get install $* failed"
}

# sb_makefile_var prints a `NAME := value` variable from the Makefile, which is
# the single place where tool versions are pinned. An environment variable of
# the same name (make exports them to the scripts) wins.
sb_makefile_var() {
	local name="$1" value="${!1:-}"
	if [[ -z "$value" ]]; then
		value="$(sed -n "s/^${name}[[:space:]]*[:?]\{0,1\}=[[:space:]]*//p" "$SB_ROOT/Makefile" | head -n1)"
	fi
	[[ -n "$value" ]] || sb_die "$name is not set and not found in the Makefile"
	printf '%s\n' "$value"
}

# sb_port_busy succeeds when something accepts TCP connections on 127.0.0.1:$1.
sb_port_busy() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# sb_alive succeeds when process $1 exists and is not a zombie (a process this
# shell started stays a zombie, which kill -0 still finds, until it is reaped).
sb_alive() {
	local state
	kill -0 "$1" 2>/dev/null || return 1
	state="$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null)" || return 1
	[[ "$state" != Z ]]
}

# sb_go_install_pinned builds `pkg@version` into bin/ unless bin/NAME was
# already built from that module version (read from the binary's build info,
# which does not depend on how the tool formats its own --version).
# Usage: sb_go_install_pinned NAME MODULE PACKAGE VERSION [go install flags...]
sb_go_install_pinned() {
	local name="$1" module="$2" pkg="$3" version="$4"
	shift 4
	local bin="$SB_BIN/$name"
	if [[ -x "$bin" ]] && go version -m "$bin" 2>/dev/null |
		awk -v m="$module" -v v="$version" '$1 == "mod" && $2 == m && $3 == v { found = 1 } END { exit !found }'; then
		return 0
	fi
	sb_log "building $name $version into bin/ (the first build can take a few minutes)"
	mkdir -p "$SB_BIN"
	local start=$SECONDS
	GOBIN="$SB_BIN" go install "$@" "$pkg@$version" || sb_die "go install $pkg@$version failed"
	sb_log "built $name in $((SECONDS - start))s"
}

# sb_go_files prints, NUL-separated, the Go files that gofmt checks: tracked
# files plus new ones that git does not ignore (so a file is checked before its
# first commit), never testdata/ or vendor/. Outside git it walks the tree.
sb_go_files() {
	local f
	if git -C "$SB_ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git -C "$SB_ROOT" ls-files -z --cached --others --exclude-standard -- '*.go'
	else
		(cd "$SB_ROOT" && find . \( -name .git -o -name .data -o -name bin -o -name node_modules \) -prune -o \
			-name '*.go' -type f -printf '%P\0')
	fi | while IFS= read -r -d '' f; do
		case "/$f" in */testdata/* | */vendor/*) continue ;; esac
		if [[ -f "$SB_ROOT/$f" ]]; then printf '%s\0' "$f"; fi
	done
}

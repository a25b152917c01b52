#!/usr/bin/env bash
# Static checks (what `make lint` runs, and `make test` first).
#
#   scripts/lint.sh              gofmt check, go vet, staticcheck
#   scripts/lint.sh fmt          rewrite the Go files with gofmt
#   scripts/lint.sh fmt-check    fail listing the files gofmt would change
#   scripts/lint.sh vet          go vet ./...
#   scripts/lint.sh staticcheck  staticcheck ./... (pinned STATICCHECK_VERSION, built into bin/)
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
cd "$SB_ROOT"

fmt_check() {
	local unformatted
	sb_log "gofmt -l"
	unformatted="$(sb_go_files | xargs -0 -r gofmt -l)"
	if [[ -n "$unformatted" ]]; then
		printf '%s\n' "$unformatted" >&2
		sb_die "these files are not gofmt-formatted; run: make fmt"
	fi
}

fmt_write() {
	sb_go_files | xargs -0 -r gofmt -w -l
}

vet() {
	sb_log "go vet ./..."
	go vet ./...
	# deploy/ is a module of its own (its checks' dependencies stay out of
	# the main module).
	sb_log "go vet ./... in deploy/"
	(cd deploy && go vet ./...)
}

static_check() {
	local version
	version="$(sb_makefile_var STATICCHECK_VERSION)"
	sb_go_install_pinned staticcheck honnef.co/go/tools honnef.co/go/tools/cmd/staticcheck "v${version#v}"
	sb_log "staticcheck ./..."
	"$SB_BIN/staticcheck" ./...
}

case "${1:-all}" in
all)
	fmt_check
	vet
	static_check
	;;
fmt) fmt_write ;;
fmt-check) fmt_check ;;
vet) vet ;;
staticcheck) static_check ;;
*)
	sed -n '2,8s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
	;;
esac

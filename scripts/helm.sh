#!/usr/bin/env bash
# Helm, for the chart checks in deploy/ (make test renders the chart with
# `helm template`; nothing here talks to a cluster).
#
#   scripts/helm.sh build    build the pinned helm into bin/helm (skipped when built)
#
# Sourced, it only defines helm_build. The version is HELM_VERSION, pinned in
# the Makefile; it is built from the Go module proxy with the repository's Go
# toolchain, like the other tools.

# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

# helm_build builds the pinned helm into bin/helm unless it is there.
helm_build() {
	local version
	version="$(sb_makefile_var HELM_VERSION)" || exit 1
	version="${version#v}"
	sb_go_install_pinned helm helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm "v$version" \
		-ldflags "-X helm.sh/helm/v3/internal/version.version=v$version"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	set -euo pipefail
	case "${1:-}" in
	build) helm_build ;;
	*)
		sed -n '2,6s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
		exit 2
		;;
	esac
fi

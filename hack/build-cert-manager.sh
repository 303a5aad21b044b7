#!/usr/bin/env bash
# Builds cert-manager's controller, which the operator's tests run against
# the envtest API server (test/envtestenv), from the Go module proxy (its own
# cmd/controller module is not served: hack/cert-manager/main.go runs the
# same controllers), and prints the path of the binary on stdout.
#
# The version is the one hack/cert-manager/go.mod requires. The binary is
# cached outside the repository, in
#   ${XDG_CACHE_HOME:-$HOME/.cache}/trustee/cert-manager-<version>/cert-manager-controller
# so that a fresh clone (CI) reuses it: quiet, and quick, when it is there.
# A cold build takes about 7 minutes on two cores. The cache is keyed by the
# version alone: after changing hack/cert-manager/main.go, remove that
# directory.
# Run by hack/install-test-deps.sh; test/envtestenv runs it too when the
# binary is missing.
set -euo pipefail

hack_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/tool-cache.sh
source "$hack_dir/lib/tool-cache.sh"

module=github.com/cert-manager/cert-manager
version=$(module_version "$module" "$hack_dir/cert-manager/go.mod")
dir=$cache_root/cert-manager-$version
# What cert-manager's release build sets: its version, in its log and in the
# User-Agent of its requests.
ldflags="-X $module/pkg/util.AppVersion=$version -X $module/pkg/util.AppGitState=clean"
build cert-manager-controller "$hack_dir/cert-manager" . "$version" "$dir" "$ldflags"
echo "$dir/cert-manager-controller"

#!/usr/bin/env bash
# Builds govulncheck (golang.org/x/vuln/cmd/govulncheck), which `make lint`
# runs through hack/govulncheck.sh, from the Go module proxy, and prints the
# path of the binary on stdout.
#
# The version is the one hack/govulncheck/go.mod requires. The binary is
# cached outside the repository, in
#   ${XDG_CACHE_HOME:-$HOME/.cache}/trustee/govulncheck-<version>/govulncheck
# so that a fresh clone (CI) reuses it: quiet, and quick, when it is there.
# A cold build takes about half a minute.
set -euo pipefail

hack_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/tool-cache.sh
source "$hack_dir/lib/tool-cache.sh"

mod=golang.org/x/vuln
version=$(module_version "$mod" "$hack_dir/govulncheck/go.mod")
dir=$cache_root/govulncheck-$version
build govulncheck "$hack_dir/govulncheck" "$mod/cmd/govulncheck" "$version" "$dir"
echo "$dir/govulncheck"

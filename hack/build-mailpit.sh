#!/usr/bin/env bash
# Builds Mailpit, the SMTP server with an HTTP API that the mail tests run
# (test/mailpittest), from the Go module proxy, and prints the path of the
# binary on stdout.
#
# The version is the one hack/mailpit/go.mod requires. The binary is cached
# outside the repository, in
#   ${XDG_CACHE_HOME:-$HOME/.cache}/trustee/mailpit-<version>/mailpit
# so that a fresh clone (CI) reuses it: quiet, and quick, when it is there.
# A cold build takes a few minutes (Mailpit brings a pure-Go SQLite).
# Run by hack/install-test-deps.sh; test/mailpittest runs it too when the
# binary is missing.
set -euo pipefail

hack_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/tool-cache.sh
source "$hack_dir/lib/tool-cache.sh"

pkg=github.com/axllent/mailpit
version=$(module_version "$pkg" "$hack_dir/mailpit/go.mod")
dir=$cache_root/mailpit-$version
build mailpit "$hack_dir/mailpit" "$pkg" "$version" "$dir" "-X $pkg/config.Version=$version"
echo "$dir/mailpit"

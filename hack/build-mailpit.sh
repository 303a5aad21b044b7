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
module_dir=$hack_dir/mailpit
pkg=github.com/axllent/mailpit

version=$(awk -v pkg="$pkg" '
	{ for (i = 1; i < NF; i++) if ($i == pkg && $(i + 1) ~ /^v/) print $(i + 1) }
' "$module_dir/go.mod" | head -n 1)
if [[ -z $version ]]; then
	echo "build-mailpit: no version of $pkg in $module_dir/go.mod" >&2
	exit 1
fi

cache_dir=${XDG_CACHE_HOME:-$HOME/.cache}/trustee/mailpit-$version
bin=$cache_dir/mailpit

if [[ -x $bin ]]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$cache_dir"

# Tests of several packages may ask for the binary at once: build it once.
if command -v flock >/dev/null 2>&1; then
	exec 9>"$cache_dir/.lock"
	flock 9
	if [[ -x $bin ]]; then
		echo "$bin"
		exit 0
	fi
fi

if ! command -v go >/dev/null 2>&1; then
	echo "build-mailpit: go is not on PATH" >&2
	exit 1
fi

echo "build-mailpit: building mailpit $version into $cache_dir (takes a few minutes)" >&2
tmp=$(mktemp "$cache_dir/.mailpit.XXXXXX")
trap 'rm -f "$tmp"' EXIT
(
	cd "$module_dir"
	GOWORK=off CGO_ENABLED=0 go build -trimpath \
		-ldflags "-s -w -X $pkg/config.Version=$version" \
		-o "$tmp" "$pkg"
)
chmod 0755 "$tmp"
mv -f "$tmp" "$bin"
trap - EXIT
echo "$bin"

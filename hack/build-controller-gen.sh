#!/usr/bin/env bash
# Builds controller-gen (sigs.k8s.io/controller-tools), the generator of the
# deepcopy code in api/ and of the CRDs under config/crd (`make generate
# manifests`), from the Go module proxy, and prints the path of the binary on
# stdout.
#
# The version is the one hack/tools/go.mod requires. The binary is cached
# outside the repository, in
#   ${XDG_CACHE_HOME:-$HOME/.cache}/trustee/controller-gen-<version>/controller-gen
# so that a fresh clone (CI) reuses it: quiet, and quick, when it is there.
# A cold build takes about a minute.
set -euo pipefail

hack_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
module_dir=$hack_dir/tools
mod=sigs.k8s.io/controller-tools
pkg=$mod/cmd/controller-gen

version=$(awk -v mod="$mod" '
	{ for (i = 1; i < NF; i++) if ($i == mod && $(i + 1) ~ /^v/) print $(i + 1) }
' "$module_dir/go.mod" | head -n 1)
if [[ -z $version ]]; then
	echo "build-controller-gen: no version of $mod in $module_dir/go.mod" >&2
	exit 1
fi

cache_dir=${XDG_CACHE_HOME:-$HOME/.cache}/trustee/controller-gen-$version
bin=$cache_dir/controller-gen

if [[ -x $bin ]]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$cache_dir"

# Two makes may ask for the binary at once: build it once.
if command -v flock >/dev/null 2>&1; then
	exec 9>"$cache_dir/.lock"
	flock 9
	if [[ -x $bin ]]; then
		echo "$bin"
		exit 0
	fi
fi

if ! command -v go >/dev/null 2>&1; then
	echo "build-controller-gen: go is not on PATH" >&2
	exit 1
fi

echo "build-controller-gen: building controller-gen $version into $cache_dir" >&2
tmp=$(mktemp "$cache_dir/.controller-gen.XXXXXX")
trap 'rm -f "$tmp"' EXIT
(
	cd "$module_dir"
	# The version stamp is what `controller-gen --version` prints and what the
	# generated CRDs carry in their controller-gen.kubebuilder.io/version
	# annotation (without it they would say "(devel)").
	GOWORK=off CGO_ENABLED=0 go build -trimpath \
		-ldflags "-s -w -X $mod/pkg/version.version=$version" \
		-o "$tmp" "$pkg"
)
chmod 0755 "$tmp"
mv -f "$tmp" "$bin"
trap - EXIT
echo "$bin"

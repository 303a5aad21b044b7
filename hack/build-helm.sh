#!/usr/bin/env bash
# Builds helm, which the chart tests run against the envtest API server
# (test/envtestenv), from the Go module proxy, and prints the path of the
# binary on stdout.
#
# The version is the one hack/helm/go.mod requires. The binary is cached
# outside the repository, in
#   ${XDG_CACHE_HOME:-$HOME/.cache}/trustee/helm-<version>/helm
# so that a fresh clone (CI) reuses it: quiet, and quick, when it is there.
# A cold build takes a few minutes.
# Run by hack/install-test-deps.sh; test/envtestenv runs it too when the
# binary is missing.
set -euo pipefail

hack_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
module_dir=$hack_dir/helm
pkg=helm.sh/helm/v3

version=$(awk -v pkg="$pkg" '
	{ for (i = 1; i < NF; i++) if ($i == pkg && $(i + 1) ~ /^v/) print $(i + 1) }
' "$module_dir/go.mod" | head -n 1)
if [[ -z $version ]]; then
	echo "build-helm: no version of $pkg in $module_dir/go.mod" >&2
	exit 1
fi

cache_dir=${XDG_CACHE_HOME:-$HOME/.cache}/trustee/helm-$version
bin=$cache_dir/helm

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
	echo "build-helm: go is not on PATH" >&2
	exit 1
fi

echo "build-helm: building helm $version into $cache_dir (takes a few minutes)" >&2
tmp=$(mktemp "$cache_dir/.helm.XXXXXX")
trap 'rm -f "$tmp"' EXIT
(
	cd "$module_dir"
	# As helm's Makefile does for a release: its version, and the Kubernetes
	# version `helm template` and `helm lint` assume (from client-go's
	# v0.X.Y: 1.X) instead of the built-in 1.20.
	client_go=$(GOWORK=off go list -m -f '{{.Version}}' k8s.io/client-go)
	k8s_minor=${client_go#v0.}
	k8s_minor=${k8s_minor%%.*}
	ldflags="-s -w -X $pkg/internal/version.version=$version"
	ldflags+=" -X $pkg/internal/version.metadata= -X $pkg/internal/version.gitTreeState=clean"
	for p in pkg/chartutil pkg/lint/rules; do
		ldflags+=" -X $pkg/$p.k8sVersionMajor=1 -X $pkg/$p.k8sVersionMinor=$k8s_minor"
	done
	GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" \
		-o "$tmp" "$pkg/cmd/helm"
)
chmod 0755 "$tmp"
mv -f "$tmp" "$bin"
trap - EXIT
echo "$bin"

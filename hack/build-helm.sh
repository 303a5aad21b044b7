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
# shellcheck source=lib/tool-cache.sh
source "$hack_dir/lib/tool-cache.sh"

pkg=helm.sh/helm/v3
version=$(module_version "$pkg" "$hack_dir/helm/go.mod")
dir=$cache_root/helm-$version
if [[ ! -x $dir/helm ]]; then
	# As helm's Makefile does for a release: its version, and the Kubernetes
	# version `helm template` and `helm lint` assume (from client-go's
	# v0.X.Y: 1.X) instead of the built-in 1.20.
	client_go=$(cd "$hack_dir/helm" && GOWORK=off go list -m -f '{{.Version}}' k8s.io/client-go)
	k8s_minor=${client_go#v0.}
	k8s_minor=${k8s_minor%%.*}
	ldflags="-X $pkg/internal/version.version=$version"
	ldflags+=" -X $pkg/internal/version.metadata= -X $pkg/internal/version.gitTreeState=clean"
	for p in pkg/chartutil pkg/lint/rules; do
		ldflags+=" -X $pkg/$p.k8sVersionMajor=1 -X $pkg/$p.k8sVersionMinor=$k8s_minor"
	done
	build helm "$hack_dir/helm" "$pkg/cmd/helm" "$version" "$dir" "$ldflags"
fi
echo "$dir/helm"

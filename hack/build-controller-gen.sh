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
# shellcheck source=lib/tool-cache.sh
source "$hack_dir/lib/tool-cache.sh"

mod=sigs.k8s.io/controller-tools
version=$(module_version "$mod" "$hack_dir/tools/go.mod")
dir=$cache_root/controller-gen-$version
# The version stamp is what `controller-gen --version` prints and what the
# generated CRDs carry in their controller-gen.kubebuilder.io/version
# annotation (without it they would say "(devel)").
build controller-gen "$hack_dir/tools" "$mod/cmd/controller-gen" "$version" "$dir" \
	"-X $mod/pkg/version.version=$version"
echo "$dir/controller-gen"

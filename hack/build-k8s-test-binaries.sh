#!/usr/bin/env bash
# Builds etcd and kube-apiserver, the control plane that the operator's tests
# run through envtest (test/envtestenv), from the Go module proxy: the usual
# envtest binary download is not reachable here. Prints on stdout the
# directory holding `etcd` and `kube-apiserver`, which is what envtest's
# KUBEBUILDER_ASSETS (BinaryAssetsDirectory) wants.
#
# The versions are the ones hack/k8s/etcd/go.mod and
# hack/k8s/kube-apiserver/go.mod require. The binaries are cached outside the
# repository, so that a fresh clone (CI) reuses them:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/trustee/etcd-<version>/etcd
#   ${XDG_CACHE_HOME:-$HOME/.cache}/trustee/kube-apiserver-<version>/kube-apiserver
#   ${XDG_CACHE_HOME:-$HOME/.cache}/trustee/envtest-<k8s version>-etcd-<etcd version>/
#     (the printed directory: links to the two above)
# Quiet, and quick, when they are there. A cold build takes long on two
# cores: about 3 minutes for etcd and 15 for kube-apiserver (well under a
# minute once Go's build cache is warm).
# Run by hack/install-test-deps.sh; test/envtestenv runs it too when the
# binaries are missing.
set -euo pipefail

hack_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/tool-cache.sh
source "$hack_dir/lib/tool-cache.sh"

etcd_pkg=go.etcd.io/etcd/server/v3
etcd_version=$(module_version "$etcd_pkg" "$hack_dir/k8s/etcd/go.mod")
kube_version=$(module_version k8s.io/kubernetes "$hack_dir/k8s/kube-apiserver/go.mod")

assets_dir=$cache_root/envtest-$kube_version-etcd-$etcd_version
if [[ -x $assets_dir/etcd && -x $assets_dir/kube-apiserver ]]; then
	echo "$assets_dir"
	exit 0
fi

etcd_dir=$cache_root/etcd-$etcd_version
build etcd "$hack_dir/k8s/etcd" "$etcd_pkg" "$etcd_version" "$etcd_dir"

# What hack/lib/version.sh of Kubernetes sets, so that the server reports
# its version (kubectl version, /version) and not v0.0.0-master.
kube_major=${kube_version#v}
kube_major=${kube_major%%.*}
kube_minor=${kube_version#v*.}
kube_minor=${kube_minor%%.*}
kube_ldflags=
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
	kube_ldflags+=" -X $pkg.gitVersion=$kube_version"
	kube_ldflags+=" -X $pkg.gitMajor=$kube_major -X $pkg.gitMinor=$kube_minor"
	kube_ldflags+=" -X $pkg.gitTreeState=clean"
done
apiserver_dir=$cache_root/kube-apiserver-$kube_version
build kube-apiserver "$hack_dir/k8s/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver \
	"$kube_version" "$apiserver_dir" "$kube_ldflags"

# The directory envtest wants: both binaries side by side, as links.
lock "$assets_dir"
ln -sfn "../etcd-$etcd_version/etcd" "$assets_dir/.etcd.tmp"
mv -fT "$assets_dir/.etcd.tmp" "$assets_dir/etcd"
ln -sfn "../kube-apiserver-$kube_version/kube-apiserver" "$assets_dir/.kube-apiserver.tmp"
mv -fT "$assets_dir/.kube-apiserver.tmp" "$assets_dir/kube-apiserver"
echo "$assets_dir"

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
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/trustee

# module_version MODULE GO.MOD: the version GO.MOD requires of MODULE.
module_version() {
	local version
	version=$(awk -v pkg="$1" '
		{ for (i = 1; i < NF; i++) if ($i == pkg && $(i + 1) ~ /^v/) print $(i + 1) }
	' "$2" | head -n 1)
	if [[ -z $version ]]; then
		echo "build-k8s-test-binaries: no version of $1 in $2" >&2
		exit 1
	fi
	echo "$version"
}

# lock DIR: holds an exclusive lock on DIR until the script ends, so that
# tests of several packages asking at once build each binary once.
lock() {
	mkdir -p "$1"
	if command -v flock >/dev/null 2>&1; then
		local fd
		exec {fd}>"$1/.lock"
		flock "$fd"
	fi
}

# build NAME MODULE_DIR PACKAGE VERSION OUT_DIR [LDFLAGS]: builds PACKAGE
# (a tool of the module in MODULE_DIR) into OUT_DIR/NAME unless it is there.
build() {
	local name=$1 module_dir=$2 pkg=$3 version=$4 out_dir=$5 ldflags=${6:-}
	local bin=$out_dir/$name
	if [[ -x $bin ]]; then
		return
	fi
	lock "$out_dir"
	if [[ -x $bin ]]; then
		return
	fi
	if ! command -v go >/dev/null 2>&1; then
		echo "build-k8s-test-binaries: go is not on PATH" >&2
		exit 1
	fi
	echo "build-k8s-test-binaries: building $name $version into $out_dir (takes minutes)" >&2
	local tmp
	tmp=$(mktemp "$out_dir/.$name.XXXXXX")
	# shellcheck disable=SC2064 # expand $tmp now
	trap "rm -f '$tmp'" EXIT
	# -trimpath everywhere: other Kubernetes components built later
	# reuse Go's build cache only with the same setting.
	(
		cd "$module_dir"
		GOWORK=off CGO_ENABLED=0 go build -trimpath \
			-ldflags "-s -w $ldflags" -o "$tmp" "$pkg"
	)
	chmod 0755 "$tmp"
	mv -f "$tmp" "$bin"
	trap - EXIT
}

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

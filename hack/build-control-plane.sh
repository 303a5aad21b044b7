#!/usr/bin/env bash
# Builds a whole Kubernetes control plane without a kubelet, which
# test/controlplane runs on 127.0.0.1: etcd and kube-apiserver (through
# hack/build-k8s-test-binaries.sh), kube-controller-manager,
# kube-scheduler and kwok, whose simulated Nodes take the kubelet's place,
# all from the Go module proxy. Prints on stdout the directory holding
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok
#   kwok-stages/*.yaml         the lifecycle Stages kwok runs (-c): node
#                              initialize and heartbeat with lease, pod
#                              ready/complete/delete, volume pv-bind,
#                              pv-delete, pvc-provision, pvc-delete
#   kwok-storage-class.yaml    the kwok-volume StorageClass (the default
#                              one) whose claims those Stages provision
# The Stages and the StorageClass are kwok's own, from kustomize/stage/ of
# the kwok module that hack/k8s/kwok requires.
#
# The versions are the ones the wrapper modules require:
# hack/k8s/kube-controller-manager/go.mod and hack/k8s/kube-scheduler/go.mod
# (k8s.io/kubernetes, the same as hack/k8s/kube-apiserver/go.mod's) and
# hack/k8s/kwok/go.mod (sigs.k8s.io/kwok). The binaries are cached outside
# the repository, so that a fresh clone (CI) reuses them:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/trustee/kube-controller-manager-<version>/
#   ${XDG_CACHE_HOME:-$HOME/.cache}/trustee/kube-scheduler-<version>/
#   ${XDG_CACHE_HOME:-$HOME/.cache}/trustee/kwok-<version>/
#   ${XDG_CACHE_HOME:-$HOME/.cache}/trustee/kwok-stages-<version>/
#   ${XDG_CACHE_HOME:-$HOME/.cache}/trustee/control-plane-<k8s version>-etcd-<etcd version>-kwok-<kwok version>/
#     (the printed directory: links to all of the above)
# Quiet, and quick, when they are there. kube-controller-manager and
# kube-scheduler share most of their packages with kube-apiserver and are
# built with the same flags, so with kube-apiserver's build in Go's build
# cache both take 3 to 4 minutes on two cores; kwok takes about 2.
# Run by hack/install-test-deps.sh; test/controlplane runs it too when the
# directory is missing.
set -euo pipefail

hack_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/tool-cache.sh
source "$hack_dir/lib/tool-cache.sh"

etcd_version=$(module_version go.etcd.io/etcd/server/v3 "$hack_dir/k8s/etcd/go.mod")
kube_version=$(module_version k8s.io/kubernetes "$hack_dir/k8s/kube-apiserver/go.mod")
kwok_module=sigs.k8s.io/kwok
kwok_version=$(module_version "$kwok_module" "$hack_dir/k8s/kwok/go.mod")
for component in kube-controller-manager kube-scheduler; do
	v=$(module_version k8s.io/kubernetes "$hack_dir/k8s/$component/go.mod")
	if [[ $v != "$kube_version" ]]; then
		echo "$script_name: hack/k8s/$component requires k8s.io/kubernetes $v," \
			"hack/k8s/kube-apiserver $kube_version: keep them in step" >&2
		exit 1
	fi
done

binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
out_dir=$cache_root/control-plane-$kube_version-etcd-$etcd_version-kwok-$kwok_version
complete() {
	local name
	for name in "${binaries[@]}"; do
		[[ -x $out_dir/$name ]] || return 1
	done
	[[ -f $out_dir/kwok-storage-class.yaml && -d $out_dir/kwok-stages ]]
}
if complete; then
	echo "$out_dir"
	exit 0
fi

# etcd and kube-apiserver, as envtest has them (into
# etcd-<version>/ and kube-apiserver-<version>/).
bash "$hack_dir/build-k8s-test-binaries.sh" >/dev/null

# What hack/lib/version.sh of Kubernetes sets, as
# hack/build-k8s-test-binaries.sh does for kube-apiserver, so that they
# report their version and not v0.0.0-master. These flags only reach the
# linker: the compiled packages stay those of kube-apiserver's build.
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
for component in kube-controller-manager kube-scheduler; do
	build "$component" "$hack_dir/k8s/$component" "k8s.io/kubernetes/cmd/$component" \
		"$kube_version" "$cache_root/$component-$kube_version" "$kube_ldflags"
done

# kwok, with its version as its release build sets it (in the kubelet
# version its Nodes report).
kwok_dir=$cache_root/kwok-$kwok_version
build kwok "$hack_dir/k8s/kwok" "$kwok_module/cmd/kwok" "$kwok_version" "$kwok_dir" \
	"-X $kwok_module/pkg/consts.Version=$kwok_version"

# kwok's Stages and StorageClass, from the module the binary is built from,
# in a directory of their own (each cache directory has its own lock).
stages_dir=$cache_root/kwok-stages-$kwok_version
if [[ ! -f $stages_dir/storage-class.yaml ]]; then
	lock "$stages_dir"
fi
if [[ ! -f $stages_dir/storage-class.yaml ]]; then
	module_dir=$(
		cd "$hack_dir/k8s/kwok"
		GOWORK=off go mod download "$kwok_module"
		GOWORK=off go list -m -f '{{.Dir}}' "$kwok_module"
	)
	from=$module_dir/kustomize/stage
	if [[ ! -d $from ]]; then
		echo "$script_name: no kustomize/stage in the $kwok_module $kwok_version module ($module_dir)" >&2
		exit 1
	fi
	rm -rf "$stages_dir/stages"
	mkdir "$stages_dir/stages"
	for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
		pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml \
		volume/fast/pv-bind.yaml volume/fast/pv-delete.yaml \
		volume/fast/pvc-provision.yaml volume/fast/pvc-delete.yaml; do
		install -m 0644 "$from/$f" "$stages_dir/stages/$(basename "$f")"
	done
	# Last: its presence says that the Stages are complete.
	install -m 0644 "$from/volume/fast/storage-class.yaml" "$stages_dir/.storage-class.yaml.tmp"
	mv -fT "$stages_dir/.storage-class.yaml.tmp" "$stages_dir/storage-class.yaml"
fi

# The printed directory: everything side by side, as links.
lock "$out_dir"
link() { # link TARGET NAME
	ln -sfn "$1" "$out_dir/.$2.tmp"
	mv -fT "$out_dir/.$2.tmp" "$out_dir/$2"
}
link "../etcd-$etcd_version/etcd" etcd
link "../kube-apiserver-$kube_version/kube-apiserver" kube-apiserver
link "../kube-controller-manager-$kube_version/kube-controller-manager" kube-controller-manager
link "../kube-scheduler-$kube_version/kube-scheduler" kube-scheduler
link "../kwok-$kwok_version/kwok" kwok
link "../kwok-stages-$kwok_version/stages" kwok-stages
link "../kwok-stages-$kwok_version/storage-class.yaml" kwok-storage-class.yaml
if ! complete; then
	echo "$script_name: $out_dir is incomplete after the build" >&2
	exit 1
fi
echo "$out_dir"

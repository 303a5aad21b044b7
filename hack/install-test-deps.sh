#!/usr/bin/env bash
# Installs the Debian packages the test suite needs (the PostgreSQL 15
# server, GnuPG, OpenSSL, SoftHSM2, Chromium, ...) and makes sure the
# `postgres` OS account, which runs PostgreSQL when the tests run as root,
# exists.
#
# Quiet, and quick, when everything is already present. Run by `make test`.
set -euo pipefail

packages=(
	postgresql-15
	postgresql-client-15
	gnupg
	dirmngr
	gpg-agent
	openssl
	curl
	ca-certificates
	procps
	# server/hsm's tests: a PKCS#11 token (libsofthsm2.so, softhsm2-util),
	# pkcs11-tool to inspect it from outside, and `p11-kit server` with its
	# client module to serve it over a socket (an HSM that can be lost).
	softhsm2
	opensc
	p11-kit
	p11-kit-modules
	# controllers: the Argo CD health script (config/argocd/health.lua) run
	# by Lua 5.1, as Argo CD runs it, with a JSON decoder for its input.
	lua5.1
	lua-cjson
	# test/browsertest: a headless Chromium that the browser tests start
	# themselves (/usr/bin/chromium), and a font for its screenshots.
	chromium
	fonts-dejavu-core
)

sudo=()
if [[ $(id -u) -ne 0 ]]; then
	sudo=(sudo)
fi

as_root() {
	if [[ ${#sudo[@]} -gt 0 ]] && ! command -v sudo >/dev/null 2>&1; then
		echo "install-test-deps: need root (or sudo) to run: $*" >&2
		exit 1
	fi
	"${sudo[@]}" "$@"
}

missing=()
for pkg in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	if [[ $status != "install ok installed" ]]; then
		missing+=("$pkg")
	fi
done

if [[ ${#missing[@]} -gt 0 ]]; then
	echo "install-test-deps: installing ${missing[*]}"
	# Installing the server would otherwise create and start a default
	# "main" cluster, which the tests do not use.
	conf=/etc/postgresql-common/createcluster.d/trustee-no-main-cluster.conf
	if [[ ! -e $conf ]]; then
		as_root mkdir -p "$(dirname "$conf")"
		echo "create_main_cluster = false" | as_root tee "$conf" >/dev/null
	fi
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	for pkg in "${missing[@]}"; do
		if ! apt-cache show "$pkg" >/dev/null 2>&1; then
			echo "install-test-deps: package $pkg is not in your apt sources." >&2
			if [[ $pkg == postgresql*-15 ]]; then
				echo "install-test-deps: add the PostgreSQL apt repository (https://wiki.postgresql.org/wiki/Apt)" \
					"or use Debian 12 (bookworm), then run this again." >&2
			fi
			exit 1
		fi
	done
	as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! getent passwd postgres >/dev/null; then
	echo "install-test-deps: creating the postgres OS account"
	as_root useradd --system --user-group --home-dir /var/lib/postgresql \
		--shell /usr/sbin/nologin postgres
fi

# test/mailpittest: Mailpit, the SMTP server the mail tests run, built from
# the Go module proxy into a cache outside the repository (minutes once,
# quick and quiet later; see hack/build-mailpit.sh).
bash "$(dirname "${BASH_SOURCE[0]}")/build-mailpit.sh" >/dev/null

# test/envtestenv and the operator's tests: a real kube-apiserver and etcd
# (what envtest runs), helm for the chart tests and cert-manager's controller,
# built from the Go module proxy into the same cache (the envtest binary
# download is not reachable). The first build is long on two cores, about
# 30 minutes for all four, most of it kube-apiserver; quick and quiet later;
# see hack/build-k8s-test-binaries.sh, hack/build-helm.sh and
# hack/build-cert-manager.sh.
bash "$(dirname "${BASH_SOURCE[0]}")/build-k8s-test-binaries.sh" >/dev/null
bash "$(dirname "${BASH_SOURCE[0]}")/build-helm.sh" >/dev/null
bash "$(dirname "${BASH_SOURCE[0]}")/build-cert-manager.sh" >/dev/null

# test/monitoring: promtool, which checks and unit-tests the alerting rules
# and checks the dashboard's queries, built the same way into the same
# cache (about a quarter of an hour of CPU once; see hack/build-promtool.sh).
bash "$(dirname "${BASH_SOURCE[0]}")/build-promtool.sh" >/dev/null

# test/controlplane: the rest of a control plane without a kubelet,
# kube-controller-manager, kube-scheduler and kwok (which simulates the
# Nodes), built the same way into the same cache, with kwok's Stages and
# StorageClass. About 6 minutes once kube-apiserver's build is in Go's build
# cache; quick and quiet later; see hack/build-control-plane.sh.
bash "$(dirname "${BASH_SOURCE[0]}")/build-control-plane.sh" >/dev/null

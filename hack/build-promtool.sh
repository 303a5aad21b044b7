#!/usr/bin/env bash
# Builds promtool, Prometheus' own rule checker and rule unit-test runner,
# from the Go module proxy, and prints the path of the binary on stdout.
# The monitoring tests (controllers: config/monitoring's alerting rules and
# the Grafana dashboard's queries) run `promtool check rules` and
# `promtool test rules` with it.
#
# The version is the one of github.com/prometheus/prometheus that
# hack/promtool/go.mod requires. The binary is cached outside the
# repository, in
#   ${XDG_CACHE_HOME:-$HOME/.cache}/trustee/promtool-<version>/promtool
# so that a fresh clone (CI) reuses it: quiet, and quick, when it is there.
# A cold build takes a few minutes.
# Run by hack/install-test-deps.sh; the tests run it too when the binary is
# missing.
set -euo pipefail

hack_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/tool-cache.sh
source "$hack_dir/lib/tool-cache.sh"

pkg=github.com/prometheus/prometheus
version=$(module_version "$pkg" "$hack_dir/promtool/go.mod")
dir=$cache_root/promtool-$version
# `promtool --version` says which Prometheus it checks rules as.
build promtool "$hack_dir/promtool" "$pkg/cmd/promtool" "$version" "$dir" \
	"-X github.com/prometheus/common/version.Version=$version"
echo "$dir/promtool"

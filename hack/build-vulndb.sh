#!/usr/bin/env bash
# Builds a copy of the Go vulnerability database from the Go module proxy,
# for hosts that cannot reach https://vuln.go.dev, and prints its directory
# on stdout (govulncheck -db file://<directory>).
#
# The module golang.org/x/vulndb, at the version hack/vulndb/go.mod
# requires, carries the database's entries (data/osv: the OSV files
# vuln.go.dev serves) and the command that indexes them (cmd/indexdb); the
# copy is what indexdb makes of those entries. Its entries are those of the
# module version's date (the timestamp in its pseudo-version); in the
# module, their "modified" and "published" times are not filled in, which
# govulncheck does not use to match.
#
# The copy is cached outside the repository, in
#   ${XDG_CACHE_HOME:-$HOME/.cache}/trustee/vulndb-<version>/db
# with the indexdb binary beside it. A cold build takes about a minute.
set -euo pipefail

hack_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/tool-cache.sh
source "$hack_dir/lib/tool-cache.sh"

mod=golang.org/x/vulndb
version=$(module_version "$mod" "$hack_dir/vulndb/go.mod")
dir=$cache_root/vulndb-$version
db=$dir/db
if [[ ! -f $db/index/db.json ]]; then
	build indexdb "$hack_dir/vulndb" "$mod/cmd/indexdb" "$version" "$dir"
	lock "$dir/db-lock"
	if [[ ! -f $db/index/db.json ]]; then
		src=$(cd "$hack_dir/vulndb" && GOWORK=off go mod download "$mod" && GOWORK=off go list -m -f '{{.Dir}}' "$mod")
		if [[ ! -d $src/data/osv ]]; then
			echo "$script_name: $mod $version has no data/osv directory" >&2
			exit 1
		fi
		echo "$script_name: indexing $(find "$src/data/osv" -name '*.json' | wc -l) entries of $mod $version into $db" >&2
		tmp=$(mktemp -d "$dir/.db.XXXXXX")
		# shellcheck disable=SC2064 # the directory to remove is known now
		trap "rm -rf '$tmp'" EXIT
		"$dir/indexdb" -vulns "$src/data/osv" -out "$tmp"
		rm -rf "$db"
		mv "$tmp" "$db"
		trap - EXIT
	fi
fi
echo "$db"

#!/usr/bin/env bash
# Checks the project's module for known vulnerabilities with govulncheck
# (`make lint`): it fails when the project's code reaches a function that
# has a known vulnerability — in a dependency or in the standard library of
# the Go toolchain that builds it — and govulncheck names each one, with a
# call path and the version that fixes it.
#
# The vulnerability database is, in this order:
#   - GOVULNDB, when set: a database URL for govulncheck -db
#     (https://... or file:///...);
#   - https://vuln.go.dev, when it answers;
#   - otherwise a copy built from the Go module proxy (hack/build-vulndb.sh;
#     its entries are as new as the golang.org/x/vulndb version
#     hack/vulndb/go.mod requires: update it there to take newer ones).
# When govulncheck cannot be built or no database can be had, the check is
# skipped with a message that says what is missing (an error instead when
# GOVULNCHECK_REQUIRED is set). Whatever a database it reached reports is
# never skipped.
set -euo pipefail

hack_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$hack_dir/.." && pwd)

skip() {
	if [[ -n ${GOVULNCHECK_REQUIRED:-} ]]; then
		echo "govulncheck: FAILED: $1" >&2
		exit 1
	fi
	echo "govulncheck: SKIPPED, no vulnerability check was made: $1" >&2
	exit 0
}

if ! govulncheck=$(bash "$hack_dir/build-govulncheck.sh"); then
	skip "govulncheck could not be built from the Go module proxy ($(go env GOPROXY))"
fi

db=${GOVULNDB:-}
about=$db
if [[ -z $db ]]; then
	if curl --silent --fail --max-time 10 --output /dev/null https://vuln.go.dev/index/db.json 2>/dev/null; then
		db=https://vuln.go.dev
		about=$db
	else
		echo "govulncheck: https://vuln.go.dev does not answer from this host; using the database from the Go module proxy" >&2
		if ! dir=$(bash "$hack_dir/build-vulndb.sh"); then
			skip "neither https://vuln.go.dev nor golang.org/x/vulndb from the Go module proxy ($(go env GOPROXY)) could be reached: there is no vulnerability database"
		fi
		db=file://$dir
		version=${dir%/db}
		version=${version##*/vulndb-}
		stamp=${version#v0.0.0-}
		about="golang.org/x/vulndb $version (entries up to ${stamp:0:4}-${stamp:4:2}-${stamp:6:2})"
	fi
fi
echo "govulncheck: $("$govulncheck" -version 2>/dev/null | sed -n 's/^Scanner: //p' | head -n 1), database $about, $(go env GOVERSION)" >&2
cd "$root"
exec "$govulncheck" -db "$db" ./...

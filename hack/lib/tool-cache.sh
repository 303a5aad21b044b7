# shellcheck shell=bash
# Shared by the hack/build-*.sh scripts (source it): they build test tools
# from the Go module proxy, each from a wrapper module under hack/ that pins
# its version, into ${XDG_CACHE_HOME:-$HOME/.cache}/trustee/<tool>-<version>/,
# outside the repository, so that a fresh clone (CI) on this machine reuses
# them. Quiet and quick when a tool is there.

# shellcheck disable=SC2034 # used by the scripts that source this file
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/trustee
script_name=$(basename "$0" .sh)

# module_version MODULE GOMOD prints the version of MODULE that GOMOD requires.
module_version() {
	local version
	version=$(awk -v mod="$1" '
		{ for (i = 1; i < NF; i++) if ($i == mod && $(i + 1) ~ /^v/) print $(i + 1) }
	' "$2" | head -n 1)
	if [[ -z $version ]]; then
		echo "$script_name: no version of $1 in $2" >&2
		exit 1
	fi
	echo "$version"
}

# lock DIR holds a lock on DIR until the script ends: builds started at once
# (tests of several packages) build once.
lock() {
	mkdir -p "$1"
	if command -v flock >/dev/null 2>&1; then
		local fd
		exec {fd}>"$1/.lock"
		flock "$fd"
	fi
}

# build NAME MODULE_DIR PKG VERSION OUT_DIR [LDFLAGS] builds the main package
# PKG of the wrapper module in MODULE_DIR into OUT_DIR/NAME, unless it is
# there: under a temporary name first, so that a half-built binary is never
# taken for a tool.
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
		echo "$script_name: go is not on PATH" >&2
		exit 1
	fi
	echo "$script_name: building $name $version into $out_dir (takes minutes, once)" >&2
	local tmp
	tmp=$(mktemp "$out_dir/.$name.XXXXXX")
	# shellcheck disable=SC2064 # the file to remove is known now
	trap "rm -f '$tmp'" EXIT
	(
		cd "$module_dir" || exit
		GOWORK=off CGO_ENABLED=0 go build -trimpath \
			-ldflags "-s -w $ldflags" -o "$tmp" "$pkg"
	)
	chmod 0755 "$tmp"
	mv -f "$tmp" "$bin"
	trap - EXIT
}

// Builds govulncheck (golang.org/x/vuln/cmd/govulncheck), which `make lint`
// runs on the project's module (hack/govulncheck.sh). A module of its own,
// so that govulncheck's dependencies never mix with the project's. Built by
// hack/build-govulncheck.sh, which reads the version to build from the
// golang.org/x/vuln require line below.
module trustee.dev/trustee/hack/govulncheck

go 1.26.0

tool golang.org/x/vuln/cmd/govulncheck

require (
	golang.org/x/mod v0.42.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/telemetry v0.0.0-20261010193011-f71dc92da45e // indirect
	golang.org/x/tools v0.52.0 // indirect
	golang.org/x/vuln v1.9.0 // indirect
)

#!/usr/bin/env bash
# Makes the generated parts of the Helm chart charts/trustee-operator from
# what `make manifests` generates under config/, so that the chart and
# config/ cannot drift apart:
#   - charts/trustee-operator/charts/crds/crds/: copies of the CRDs in
#     config/crd/bases (the crds subchart, installed with crds.install);
#   - charts/trustee-operator/templates/_rules.tpl: the operator's rules,
#     those of config/rbac/role.yaml (generated from the RBAC markers in
#     controllers/), which templates/clusterrole.yaml grants cluster-wide or
#     in the namespaces of watchNamespaces.
# Run by `make manifests`; test/deploy checks the result.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
crd_dir=$root/config/crd/bases
role=$root/config/rbac/role.yaml
chart=$root/charts/trustee-operator

rm -f "$chart"/charts/crds/crds/*.yaml
mkdir -p "$chart/charts/crds/crds"
cp "$crd_dir"/*.yaml "$chart/charts/crds/crds/"

# controller-gen writes the rules last, from the line "rules:" on.
if ! grep -q '^rules:' "$role"; then
	echo "sync-chart: no rules in $role" >&2
	exit 1
fi
{
	cat <<'TEMPLATE'
{{- /*
Generated from config/rbac/role.yaml by hack/sync-chart.sh (make manifests).
Do not edit: change the +kubebuilder:rbac markers in controllers/ instead.
The rules of the operator, granted by clusterrole.yaml.
*/ -}}
{{- define "trustee-operator.rules" -}}
TEMPLATE
	sed -n '/^rules:/,$p' "$role" | sed 1d
	echo '{{- end -}}'
} >"$chart/templates/_rules.tpl"

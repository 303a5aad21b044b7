#!/usr/bin/env bash
# Makes the generated copies of Trustee's alerting rules and dashboard from
# their sources in config/monitoring, so that they cannot drift apart:
#   - config/monitoring/prometheusrule.yaml: the rules of alerts.rules.yaml
#     as a PrometheusRule (the Prometheus operator's kind), for kustomize;
#   - charts/trustee-operator/files/alerts.rules.yaml and
#     files/grafana-dashboard.json: the chart's copies, which its
#     PrometheusRule and dashboard ConfigMap templates read.
# Run by `make manifests`; `make verify` checks that the copies are current.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=$root/config/monitoring
files=$root/charts/trustee-operator/files

if ! grep -q '^groups:' "$src/alerts.rules.yaml"; then
	echo "sync-monitoring: no groups in $src/alerts.rules.yaml" >&2
	exit 1
fi
{
	cat <<'HEADER'
# Generated from alerts.rules.yaml by hack/sync-monitoring.sh (make
# manifests). Do not edit: change alerts.rules.yaml instead.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: trustee
  labels:
    app.kubernetes.io/name: trustee
spec:
HEADER
	sed -n '/^groups:/,$p' "$src/alerts.rules.yaml" | sed 's/^\(.\)/  \1/'
} >"$src/prometheusrule.yaml"

mkdir -p "$files"
cp "$src/alerts.rules.yaml" "$src/grafana-dashboard.json" "$files/"

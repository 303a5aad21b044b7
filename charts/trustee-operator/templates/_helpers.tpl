{{/*
The chart's name, or nameOverride: the label app.kubernetes.io/name.
*/}}
{{- define "trustee-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the objects: fullnameOverride, else the release's name
followed by the chart's name unless the release's name holds it already.
At most 63 characters (a DNS label).
*/}}
{{- define "trustee-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the label helm.sh/chart.
*/}}
{{- define "trustee-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The labels of every object. Values are quoted: a release named "n" or "on"
would otherwise be a YAML boolean.
*/}}
{{- define "trustee-operator.labels" -}}
helm.sh/chart: {{ include "trustee-operator.chart" . | quote }}
{{ include "trustee-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/part-of: trustee
{{- end }}

{{/*
The labels that select the operator's pods (the servers' NetworkPolicy
selects them by trustee.dev/operator, which the pod template adds).
*/}}
{{- define "trustee-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trustee-operator.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{/*
The ServiceAccount the operator runs as.
*/}}
{{- define "trustee-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "trustee-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The operator's image, also the servers' default image: pinned by digest
when image.digest is set, else by tag.
*/}}
{{- define "trustee-operator.image" -}}
{{- with .Values.image.digest }}
{{- if not (regexMatch "^sha256:[0-9a-f]{64}$" .) }}
{{- fail (printf "image.digest %q: give the image's digest as sha256: followed by 64 lower-case hex digits (what `podman image inspect --format '{{.Digest}}'` or `docker buildx imagetools inspect` prints)" .) }}
{{- end }}
{{- printf "%s@%s" $.Values.image.repository . }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The namespace of the operator's objects: namespace.name when the chart
creates that namespace, the release's otherwise. Helm keeps its release
record in the release's namespace, which must exist before the install: so
the namespace the chart creates is another one.
*/}}
{{- define "trustee-operator.namespace" -}}
{{- if .Values.namespace.create -}}
{{- if not .Values.namespace.name -}}
{{- fail "namespace.create needs namespace.name: the namespace the chart creates for the operator (e.g. trustee-system), other than the release's, which must exist already" -}}
{{- end -}}
{{- if eq .Values.namespace.name .Release.Namespace -}}
{{- fail (printf "namespace.name %q is the release's namespace, which must exist before Helm installs: install the release in an existing namespace (e.g. --namespace default) and let the chart create %s" .Values.namespace.name .Values.namespace.name) -}}
{{- end -}}
{{- .Values.namespace.name -}}
{{- else -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

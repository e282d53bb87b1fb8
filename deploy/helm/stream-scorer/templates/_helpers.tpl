{{- define "stream-scorer.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "stream-scorer.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "stream-scorer.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The Secret holding SCORER_API_TOKEN: the user's, or the chart's own. */}}
{{- define "stream-scorer.tokenSecret" -}}
{{- .Values.api.tokenSecret | default (printf "%s-api-token" (include "stream-scorer.fullname" .)) -}}
{{- end -}}

{{/* The model file's text: the values' own, or the default model. */}}
{{- define "stream-scorer.model" -}}
{{- .Values.model | default (.Files.Get "files/scoring.yaml") -}}
{{- end -}}

{{/* The autoscaler's cap: never more workers than partitions. */}}
{{- define "stream-scorer.maxReplicas" -}}
{{- min (int .Values.keda.maxReplicas) (int .Values.partitions) -}}
{{- end -}}

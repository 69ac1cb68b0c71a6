{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "sentinel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-chart unless the release name already holds it. */}}
{{- define "sentinel.fullname" -}}
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

{{- define "sentinel.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sentinel.labels" -}}
helm.sh/chart: {{ include "sentinel.chart" . }}
{{ include "sentinel.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "sentinel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sentinel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "sentinel.redis.fullname" -}}
{{- printf "%s-redis" (include "sentinel.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sentinel.redis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sentinel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end }}

{{- define "sentinel.redis.labels" -}}
helm.sh/chart: {{ include "sentinel.chart" . }}
{{ include "sentinel.redis.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "sentinel.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sentinel.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret the pods read their keys from. */}}
{{- define "sentinel.secretName" -}}
{{- default (include "sentinel.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "sentinel.policyConfigMap" -}}
{{- default (printf "%s-policy" (include "sentinel.fullname" .)) .Values.policy.existingConfigMap }}
{{- end }}

{{/* Fails the render when neither a bundled nor an external Redis is configured. */}}
{{- define "sentinel.validate" -}}
{{- if and (not .Values.redis.bundled) (not .Values.redis.external.url) (not .Values.redis.external.existingSecret) }}
{{- fail "redis: set redis.bundled=true, or redis.external.url, or redis.external.existingSecret (Sentinel replicas share state only through Redis)" }}
{{- end }}
{{- if and .Values.redis.bundled (or .Values.redis.external.url .Values.redis.external.existingSecret) }}
{{- fail "redis: redis.bundled=true and redis.external.* are both set; choose one" }}
{{- end }}
{{- if and (not .Values.secrets.existingSecret) (not .Values.auth.allowOpen) (not .Values.secrets.values.SENTINEL_API_KEYS) }}
{{- fail "secrets.values.SENTINEL_API_KEYS is empty: set it (agent:NAME=KEY;operator:NAME=KEY), or secrets.existingSecret, or auth.allowOpen=true for a sandbox without authentication" }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled=true needs tls.secretName (a Secret of type kubernetes.io/tls)" }}
{{- end }}
{{- end }}

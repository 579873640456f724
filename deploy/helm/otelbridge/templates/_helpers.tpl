{{- define "otelbridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "otelbridge.fullname" -}}
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

{{- define "otelbridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "otelbridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "otelbridge.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "otelbridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "otelbridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "otelbridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the token and its key; rendering fails when no token source is set. */}}
{{- define "otelbridge.tokenSecret" -}}
{{- if .Values.cloudflare.existingSecret }}
{{- .Values.cloudflare.existingSecret }}
{{- else if .Values.cloudflare.apiToken }}
{{- include "otelbridge.fullname" . }}
{{- else }}
{{- fail "cloudflare.existingSecret (a Secret holding the API token) or cloudflare.apiToken must be set" }}
{{- end }}
{{- end }}

{{- define "otelbridge.tokenKey" -}}
{{- if .Values.cloudflare.existingSecret }}
{{- required "cloudflare.existingSecretKey must name the key holding the token" .Values.cloudflare.existingSecretKey }}
{{- else }}
{{- "token" }}
{{- end }}
{{- end }}

{{/* The OTLP endpoint's port, for the NetworkPolicy: explicit, else the scheme's default. */}}
{{- define "otelbridge.otlpPort" -}}
{{- $url := urlParse .Values.otlp.endpoint }}
{{- $parts := splitList ":" $url.host }}
{{- if gt (len $parts) 1 }}{{ last $parts }}{{ else if eq $url.scheme "https" }}443{{ else }}80{{ end }}
{{- end }}

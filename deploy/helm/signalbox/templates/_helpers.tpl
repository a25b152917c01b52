{{/* The chart's name, or nameOverride. */}}
{{- define "signalbox.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: fullnameOverride, or release-chart. */}}
{{- define "signalbox.fullname" -}}
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

{{- define "signalbox.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "signalbox.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "signalbox.selectorLabels" -}}
app.kubernetes.io/name: {{ include "signalbox.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "signalbox.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "signalbox.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "signalbox.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret that holds DATABASE_URL (and SMTP_URL). */}}
{{- define "signalbox.secretName" -}}
{{- default (include "signalbox.fullname" .) .Values.existingSecret }}
{{- end }}

{{/* The Secret the pre-install hooks read: Helm creates hooks before the
release's own objects, so they cannot read the chart's Secret on a first
install. */}}
{{- define "signalbox.hookSecretName" -}}
{{- if .Values.existingSecret }}
{{- .Values.existingSecret }}
{{- else }}
{{- printf "%s-hooks" (include "signalbox.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Secret values must be given when no existing secret is named. */}}
{{- define "signalbox.validate" -}}
{{- if and (not .Values.existingSecret) (not .Values.postgresql.url) }}
{{- fail "set postgresql.url (the PostgreSQL URL) or existingSecret (a Secret with DATABASE_URL)" }}
{{- end }}
{{- end }}

{{/* Environment from the Secret: DATABASE_URL required, TEMPORAL_ADDRESS
and SMTP_URL optional there (TEMPORAL_ADDRESS then comes from the
ConfigMap). Argument: (list . secretName). */}}
{{- define "signalbox.secretEnv" -}}
{{- $ := index . 0 }}
{{- $secret := index . 1 }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: DATABASE_URL
- name: SMTP_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: SMTP_URL
      optional: true
{{- if $.Values.existingSecret }}
- name: TEMPORAL_ADDRESS
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: TEMPORAL_ADDRESS
      optional: true
{{- end }}
{{- with $.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

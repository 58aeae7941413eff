{{/*
Names and labels. Every service chart sets .Values.component (sync, presence
or edge); names never depend on .Chart.Name, which an umbrella alias changes.
*/}}

{{- define "accord.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Values.component | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "accord.name" -}}
{{- printf "accord-%s" .Values.component -}}
{{- end -}}

{{- define "accord.selectorLabels" -}}
app.kubernetes.io/name: {{ include "accord.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "accord.labels" -}}
{{ include "accord.selectorLabels" . }}
app.kubernetes.io/component: {{ .Values.component }}
app.kubernetes.io/part-of: accord
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "accord.image" -}}
{{- $registry := .Values.image.registry | default ((.Values.global).imageRegistry) | default "" -}}
{{- $tag := .Values.image.tag | default ((.Values.global).imageTag) | default .Chart.AppVersion -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" $registry .Values.image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "accord.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "accord.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* The Secret the pods read: an existing one (the value may be a template) or the chart's own. */}}
{{- define "accord.secretName" -}}
{{- if .Values.existingSecret -}}
{{- tpl .Values.existingSecret . -}}
{{- else -}}
{{- include "accord.fullname" . -}}
{{- end -}}
{{- end -}}

{{/* Whether the pods read a Secret at all. */}}
{{- define "accord.hasSecret" -}}
{{- if or .Values.existingSecret (include "accord.secretData" . | trim) -}}true{{- end -}}
{{- end -}}

{{/* The chart's own Secret data: every non-empty entry of .Values.secrets. */}}
{{- define "accord.secretData" -}}
{{- range $key, $value := .Values.secrets }}
{{- if $value }}
{{ $key }}: {{ $value | b64enc | quote }}
{{- end }}
{{- end }}
{{- end -}}

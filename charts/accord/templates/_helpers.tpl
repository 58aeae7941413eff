{{- define "accord-suite.labels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: accord
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "accord-suite.postgresqlHost" -}}{{ .Release.Name }}-postgresql{{- end -}}
{{- define "accord-suite.redisHost" -}}{{ .Release.Name }}-redis{{- end -}}

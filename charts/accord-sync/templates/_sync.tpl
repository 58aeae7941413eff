{{/* Embedded mode: no PostgreSQL configured, so SQLite on an emptyDir and one replica. */}}
{{- define "accord-sync.embedded" -}}
{{- if not (or .Values.existingSecret .Values.secrets.DATABASE_URL) -}}true{{- end -}}
{{- end -}}

{{- define "accord-sync.databaseEnv" -}}
{{- if include "accord-sync.embedded" . }}
- name: DATABASE_URL
  value: sqlite:////var/lib/accord/accord.db
{{- else }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "accord.secretName" . }}
      key: DATABASE_URL
{{- end }}
{{- end -}}

{{/* In-memory mode: no Redis configured, so presence state lives in one pod. */}}
{{- define "accord-presence.inMemory" -}}
{{- if not (or .Values.existingSecret .Values.secrets.REDIS_URL) -}}true{{- end -}}
{{- end -}}

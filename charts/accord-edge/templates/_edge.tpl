{{/*
The edge's own certificate (tls.secretName, a kubernetes.io/tls Secret): mounted as a
directory, so a renewal reaches the running pods and the edge loads it within
TLS_RELOAD_INTERVAL. With it the port speaks only TLS: wss:// and https://.
*/}}
{{- define "accord-edge.tlsDir" -}}/etc/accord/tls{{- end -}}

{{- define "accord-edge.tlsSecretName" -}}
{{- with .Values.tls.secretName -}}{{ tpl . $ }}{{- end -}}
{{- end -}}

{{/* "s" when the edge serves TLS itself, for the schemes: wss, https. */}}
{{- define "accord-edge.s" -}}
{{- if .Values.tls.secretName -}}s{{- end -}}
{{- end -}}


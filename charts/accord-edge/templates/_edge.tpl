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


{{/*
Traefik in front of a TLS edge (traefik.serversTransport): "true" when the chart renders the
ServersTransport and the Service's annotations that name it; on without tls.secretName fails,
since a plain-HTTP edge needs none.
*/}}
{{- define "accord-edge.traefikTransport" -}}
{{- if .Values.traefik.serversTransport.enabled -}}
{{- if not .Values.tls.secretName -}}
{{- fail "traefik.serversTransport.enabled needs tls.secretName: it trusts the edge's own certificate, and a plain-HTTP edge needs no ServersTransport" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/* How a Service annotation names the ServersTransport: <namespace>-<name>@kubernetescrd. */}}
{{- define "accord-edge.traefikTransportRef" -}}
{{- printf "%s-%s@kubernetescrd" .Release.Namespace (include "accord.fullname" .) -}}
{{- end -}}

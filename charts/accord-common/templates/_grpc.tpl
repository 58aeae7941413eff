{{/*
Internal gRPC security (docs/operations.md "Securing internal traffic"). Called with
(dict "root" . "server" true) for sync and presence, (dict "root" . "server" false) for the edge.

grpc.tls.secretName: a Secret with tls.crt, tls.key and ca.crt (what a cert-manager
Certificate writes), mounted as a directory so renewals reach the running pods: mutual TLS.
Without it: GRPC_ALLOW_PLAINTEXT=true, and the NetworkPolicy (on by default) is the fence.
Servers: grpc.serviceTokens.secretName holds the service tokens file; the edge:
grpc.serviceToken.secretName holds its SERVICE_TOKEN. Without them:
GRPC_ALLOW_UNAUTHENTICATED=true.
*/}}
{{- define "accord.grpcTlsDir" -}}/etc/accord/grpc-tls{{- end -}}
{{- define "accord.serviceTokensDir" -}}/etc/accord/service-tokens{{- end -}}

{{- define "accord.grpcEnv" -}}
{{- $g := .root.Values.grpc -}}
{{- if $g.tls.secretName }}
- name: GRPC_TLS_CERT_FILE
  value: {{ include "accord.grpcTlsDir" . }}/tls.crt
- name: GRPC_TLS_KEY_FILE
  value: {{ include "accord.grpcTlsDir" . }}/tls.key
- name: GRPC_TLS_CA_FILE
  value: {{ include "accord.grpcTlsDir" . }}/ca.crt
{{- else }}
- name: GRPC_ALLOW_PLAINTEXT
  value: "true"
{{- end }}
{{- if .server }}
{{- if $g.serviceTokens.secretName }}
- name: SERVICE_TOKENS_FILE
  value: {{ include "accord.serviceTokensDir" . }}/service-tokens.json
{{- else }}
- name: GRPC_ALLOW_UNAUTHENTICATED
  value: "true"
{{- end }}
{{- else if $g.serviceToken.secretName }}
- name: SERVICE_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ tpl $g.serviceToken.secretName .root }}
      key: {{ $g.serviceToken.key }}
{{- else }}
- name: GRPC_ALLOW_UNAUTHENTICATED
  value: "true"
{{- end }}
{{- end -}}

{{- define "accord.grpcVolumes" -}}
{{- $g := .root.Values.grpc -}}
{{- if $g.tls.secretName }}
- name: grpc-tls
  secret:
    secretName: {{ tpl $g.tls.secretName .root }}
{{- end }}
{{- if and .server $g.serviceTokens.secretName }}
- name: service-tokens
  secret:
    secretName: {{ tpl $g.serviceTokens.secretName .root }}
    items:
      - key: {{ $g.serviceTokens.key }}
        path: service-tokens.json
{{- end }}
{{- end -}}

{{- define "accord.grpcMounts" -}}
{{- $g := .root.Values.grpc -}}
{{- if $g.tls.secretName }}
- name: grpc-tls
  mountPath: {{ include "accord.grpcTlsDir" . }}
  readOnly: true
{{- end }}
{{- if and .server $g.serviceTokens.secretName }}
- name: service-tokens
  mountPath: {{ include "accord.serviceTokensDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{/*
A probe as given, except that with gRPC TLS a native gRPC probe (which cannot speak TLS)
becomes the image's health check, run in the container with its TLS files, and that with
the edge's own certificate (tls.secretName: its port speaks only TLS) an httpGet probe asks
over HTTPS (the kubelet does not verify the certificate).
*/}}
{{- define "accord.probe" -}}
{{- $p := deepCopy .probe -}}
{{- if and (hasKey $p "grpc") (((.root.Values.grpc).tls).secretName) -}}
{{- $_ := unset $p "grpc" -}}
{{- $_ := set $p "exec" (dict "command" (list "accord-healthcheck" .root.Values.component)) -}}
{{- $_ := set $p "timeoutSeconds" (max 5 (int (default 1 $p.timeoutSeconds))) -}}
{{- end -}}
{{- if and (hasKey $p "httpGet") ((.root.Values.tls).secretName) -}}
{{- $_ := set $p.httpGet "scheme" "HTTPS" -}}
{{- end -}}
{{- toYaml $p -}}
{{- end -}}

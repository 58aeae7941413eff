{{/* The Service: (dict "root" . "ports" (list (dict "name" "grpc" "port" 50051) ...)). */}}
{{- define "accord.service" -}}
{{- $root := .root -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "accord.fullname" $root }}
  labels:
    {{- include "accord.labels" $root | nindent 4 }}
  {{- with $root.Values.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $root.Values.service.type }}
  selector:
    {{- include "accord.selectorLabels" $root | nindent 4 }}
  ports:
    {{- range .ports }}
    - name: {{ .name }}
      port: {{ .port }}
      targetPort: {{ .name }}
      protocol: TCP
      {{- if .appProtocol }}
      appProtocol: {{ .appProtocol }}
      {{- end }}
    {{- end }}
{{- end -}}

{{/*
Prometheus Operator scrape config (optional): (dict "root" . "port" "metrics"), with
"scheme" "https" for a port that speaks TLS (then serviceMonitor.tlsConfig, if given).
*/}}
{{- define "accord.servicemonitor" -}}
{{- $root := .root -}}
{{- $sm := $root.Values.serviceMonitor -}}
{{- if $sm.enabled }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "accord.fullname" $root }}
  labels:
    {{- include "accord.labels" $root | nindent 4 }}
    {{- with $sm.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  # job="accord-<component>", the name the alert rules and the dashboard use.
  jobLabel: app.kubernetes.io/name
  selector:
    matchLabels:
      {{- include "accord.selectorLabels" $root | nindent 6 }}
  endpoints:
    - port: {{ .port }}
      path: /metrics
      {{- if eq (.scheme | default "http") "https" }}
      scheme: https
      {{- with $sm.tlsConfig }}
      tlsConfig:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- end }}
      interval: {{ $sm.interval }}
      scrapeTimeout: {{ $sm.scrapeTimeout }}
{{- end }}
{{- end -}}

{{/*
Ingress rules (optional): (dict "root" . "servingPorts" (list 50051) "metricsPort" 9101
"defaultFrom" YAML-list-of-peers-or-"").  The serving ports admit .Values.networkPolicy.ingressFrom,
or defaultFrom when that is empty (no defaultFrom: anyone). The metrics port admits
.Values.networkPolicy.metricsFrom (empty: anyone).
*/}}
{{- define "accord.networkpolicy" -}}
{{- $root := .root -}}
{{- $np := $root.Values.networkPolicy -}}
{{- if $np.enabled }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "accord.fullname" $root }}
  labels:
    {{- include "accord.labels" $root | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "accord.selectorLabels" $root | nindent 6 }}
  policyTypes: [Ingress]
  ingress:
    - ports:
        {{- range .servingPorts }}
        - port: {{ . }}
          protocol: TCP
        {{- end }}
      {{- if $np.ingressFrom }}
      from:
        {{- toYaml $np.ingressFrom | nindent 8 }}
      {{- else if .defaultFrom }}
      from:
        {{- .defaultFrom | nindent 8 }}
      {{- end }}
    {{- if .metricsPort }}
    - ports:
        - port: {{ .metricsPort }}
          protocol: TCP
      {{- with $np.metricsFrom }}
      from:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
{{- end }}
{{- end -}}

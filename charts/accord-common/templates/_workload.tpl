{{/*
The Deployment of one Accord service. Called with a dict:
  root            the chart's context (.)
  ports           YAML list of container ports (name, containerPort)
  env             YAML list of env entries the chart computes (addresses, secret refs)
  initContainers  YAML list, or ""
  volumes         YAML list of extra volumes, or ""
  volumeMounts    YAML list of extra mounts, or ""
  fixedReplicas   a replica count that wins over replicaCount and the HPA, or 0
*/}}
{{- define "accord.deployment" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $drain := add $v.shutdown.preStopSleepSeconds $v.shutdown.drainSeconds -}}
{{- if le (int $v.terminationGracePeriodSeconds) (int $drain) -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be longer than shutdown.preStopSleepSeconds + shutdown.drainSeconds (%v)" $v.terminationGracePeriodSeconds $drain) -}}
{{- end -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "accord.fullname" $root }}
  labels:
    {{- include "accord.labels" $root | nindent 4 }}
spec:
  {{- if .fixedReplicas }}
  replicas: {{ .fixedReplicas }}
  strategy:
    type: Recreate
  {{- else }}
  {{- if not $v.autoscaling.enabled }}
  replicas: {{ $v.replicaCount }}
  {{- end }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "accord.selectorLabels" $root | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "accord.labels" $root | nindent 8 }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include "accord.configData" $root | sha256sum }}
        checksum/secret: {{ include "accord.secretData" $root | sha256sum }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "accord.serviceAccountName" $root }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      # Longer than the preStop pause plus the drain, so a pod is never killed mid-drain.
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      securityContext:
        {{- toYaml $v.podSecurityContext | nindent 8 }}
      {{- with $v.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .initContainers }}
      initContainers:
        {{- . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ $v.component }}
          image: {{ include "accord.image" $root | quote }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          args: [{{ $v.component | quote }}]
          ports:
            {{- .ports | nindent 12 }}
          env:
            {{- .env | nindent 12 }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          envFrom:
            - configMapRef:
                name: {{ include "accord.fullname" $root }}
          {{- with $v.probes.startup }}
          startupProbe:
            {{- include "accord.probe" (dict "root" $root "probe" .) | nindent 12 }}
          {{- end }}
          readinessProbe:
            {{- include "accord.probe" (dict "root" $root "probe" $v.probes.readiness) | nindent 12 }}
          livenessProbe:
            {{- include "accord.probe" (dict "root" $root "probe" $v.probes.liveness) | nindent 12 }}
          lifecycle:
            # Keep serving while endpoints and load balancers forget this pod.
            preStop:
              exec:
                command: ["sleep", {{ $v.shutdown.preStopSleepSeconds | quote }}]
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $v.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- with .volumeMounts }}
            {{- . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        {{- with .volumes }}
        {{- . | nindent 8 }}
        {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      topologySpreadConstraints:
        {{- if $v.topologySpreadConstraints }}
        {{- toYaml $v.topologySpreadConstraints | nindent 8 }}
        {{- else }}
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "accord.selectorLabels" $root | nindent 14 }}
        {{- end }}
{{- end -}}

{{/* The settings of .Values.config, as ConfigMap data; empty values are left out. */}}
{{- define "accord.configData" -}}
{{- range $key, $value := .Values.config }}
{{- if not (kindIs "invalid" $value) }}
{{- if ne (toString $value) "" }}
{{ $key }}: {{ toString $value | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- /* The umbrella's global.redisPrefix, where the service's own config.REDIS_PREFIX is empty. */}}
{{- $prefix := toString ((.Values.global).redisPrefix | default "") }}
{{- if and (ne $prefix "") (eq (toString (.Values.config.REDIS_PREFIX | default "")) "") }}
REDIS_PREFIX: {{ $prefix | quote }}
{{- end }}
{{- end -}}

{{- define "accord.configmap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "accord.fullname" . }}
  labels:
    {{- include "accord.labels" . | nindent 4 }}
data:
  {{- include "accord.configData" . | trim | nindent 2 }}
{{- end -}}

{{- define "accord.secret" -}}
{{- if and (not .Values.existingSecret) (include "accord.secretData" . | trim) }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "accord.fullname" . }}
  labels:
    {{- include "accord.labels" . | nindent 4 }}
type: Opaque
data:
  {{- include "accord.secretData" . | trim | nindent 2 }}
{{- end }}
{{- end -}}

{{/* One env entry read from the pods' Secret: (dict "root" . "key" "JWT_SECRET"). */}}
{{- define "accord.secretEnv" -}}
{{- $root := .root -}}
{{- if or $root.Values.existingSecret (index $root.Values.secrets .key) }}
- name: {{ .key }}
  valueFrom:
    secretKeyRef:
      name: {{ include "accord.secretName" $root }}
      key: {{ .key }}
      {{- if $root.Values.existingSecret }}
      optional: true
      {{- end }}
{{- end }}
{{- end -}}

{{- define "accord.serviceaccount" -}}
{{- if .Values.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "accord.serviceAccountName" . }}
  labels:
    {{- include "accord.labels" . | nindent 4 }}
  {{- with .Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- end }}
{{- end -}}

{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "notification-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, with the chart name unless it contains it. */}}
{{- define "notification-gateway.fullname" -}}
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

{{- define "notification-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable for the life of the release (selectors are immutable). */}}
{{- define "notification-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "notification-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "notification-gateway.labels" -}}
helm.sh/chart: {{ include "notification-gateway.chart" . }}
{{ include "notification-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: notification-gateway
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels of the registration Job and its pods: not the gateway's selector labels. */}}
{{- define "notification-gateway.registrationLabels" -}}
helm.sh/chart: {{ include "notification-gateway.chart" . }}
app.kubernetes.io/name: {{ include "notification-gateway.name" . }}-register
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: notification-gateway
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: registration
{{- end }}

{{- define "notification-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "notification-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag or repository@digest; the tag defaults to the appVersion. */}}
{{- define "notification-gateway.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Where Restate calls the gateway (registration Job). */}}
{{- define "notification-gateway.serviceUrl" -}}
{{- if .Values.restate.registration.serviceUrl }}
{{- .Values.restate.registration.serviceUrl }}
{{- else }}
{{- printf "http://%s.%s.svc:%d" (include "notification-gateway.fullname" .) .Release.Namespace (int .Values.service.restatePort) }}
{{- end }}
{{- end }}

{{/* The gateway pod template: shared by the Deployment and the RestateDeployment. */}}
{{- define "notification-gateway.podTemplate" -}}
metadata:
  labels:
    {{- include "notification-gateway.labels" . | nindent 4 }}
    app.kubernetes.io/component: gateway
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "notification-gateway.serviceAccountName" . }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  topologySpreadConstraints:
    {{- if .Values.topologySpreadConstraints }}
    {{- range .Values.topologySpreadConstraints }}
    {{- $constraint := deepCopy . }}
    {{- if not (hasKey $constraint "labelSelector") }}
    {{- $_ := set $constraint "labelSelector" (dict "matchLabels" (include "notification-gateway.selectorLabels" $ | fromYaml)) }}
    {{- end }}
    - {{ toYaml $constraint | indent 6 | trim }}
    {{- end }}
    {{- else }}
    - maxSkew: 1
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "notification-gateway.selectorLabels" . | nindent 10 }}
    {{- end }}
  containers:
    - name: gateway
      image: {{ include "notification-gateway.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - serve
        - --restate-port={{ .Values.service.restatePort }}
        - --api-port={{ .Values.service.apiPort }}
      ports:
        - name: restate
          containerPort: {{ .Values.service.restatePort }}
          protocol: TCP
        - name: http
          containerPort: {{ .Values.service.apiPort }}
          protocol: TCP
      env:
        - name: GATEWAY_CONFIG
          value: /etc/gateway/gateway.yaml
        - name: GATEWAY_LOG_FORMAT
          value: {{ .Values.logFormat | quote }}
        - name: GATEWAY_RESTATE_INGRESS_URL
          value: {{ .Values.restate.ingressUrl | quote }}
        - name: GATEWAY_RESTATE_ADMIN_URL
          value: {{ .Values.restate.adminUrl | quote }}
        {{- with .Values.restate.identityKeys }}
        - name: GATEWAY_IDENTITY_KEYS
          value: {{ join "," . | quote }}
        {{- end }}
        {{- with .Values.model }}
        - name: GATEWAY_MODEL
          value: {{ . | quote }}
        {{- end }}
        - name: OTEL_SERVICE_NAME
          value: {{ default (include "notification-gateway.fullname" .) .Values.otel.serviceName | quote }}
        {{- with .Values.otel.endpoint }}
        - name: OTEL_EXPORTER_OTLP_ENDPOINT
          value: {{ . | quote }}
        - name: OTEL_EXPORTER_OTLP_PROTOCOL
          value: {{ $.Values.otel.protocol | quote }}
        {{- end }}
        {{- with .Values.otel.resourceAttributes }}
        - name: OTEL_RESOURCE_ATTRIBUTES
          value: {{ . | quote }}
        {{- end }}
        {{- range .Values.secrets.env }}
        - name: {{ .name }}
          valueFrom:
            secretKeyRef:
              name: {{ $.Values.secrets.existingSecret }}
              key: {{ .key }}
              {{- if .optional }}
              optional: true
              {{- end }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      volumeMounts:
        - name: config
          mountPath: /etc/gateway
          readOnly: true
        - name: tmp
          mountPath: /tmp
      startupProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 2
        failureThreshold: 30
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 20
        timeoutSeconds: 5
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        periodSeconds: 10
        timeoutSeconds: 5
        failureThreshold: 3
      lifecycle:
        preStop:
          sleep:
            seconds: 5
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
  volumes:
    - name: config
      configMap:
        name: {{ include "notification-gateway.fullname" . }}-config
    - name: tmp
      emptyDir:
        sizeLimit: 256Mi
{{- end }}

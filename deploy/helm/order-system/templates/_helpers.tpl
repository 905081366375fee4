{{/* Names shared by the umbrella chart and the service subcharts (named templates are global). */}}

{{- define "order-system.labels" -}}
app.kubernetes.io/part-of: order-system
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The Kubernetes name of a service of this release: <release>-<service>. */}}
{{- define "order-system.fullname" -}}
{{- printf "%s-%s" .root.Release.Name .name | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{- define "order-system.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{- define "order-system.dbHost" -}}
{{- .Values.global.database.host | default (printf "%s-postgresql" .Release.Name) -}}
{{- end }}

{{- define "order-system.amqpHost" -}}
{{- .Values.global.amqp.host | default (printf "%s-rabbitmq" .Release.Name) -}}
{{- end }}

{{/*
order-system.service renders everything one service needs: ConfigMap, Secret, Deployment
(migrations in an init container) and Service. Each service subchart includes it with its own
values: name, schema, replicas, resources, callsBilling.
*/}}
{{- define "order-system.service" -}}
{{- $name := .Values.name -}}
{{- $fullname := include "order-system.fullname" (dict "root" . "name" $name) -}}
{{- $g := .Values.global -}}
{{- $db := get $g.database.users $name -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "order-system.labels" . | nindent 4 }}
    app.kubernetes.io/name: {{ $name }}
data:
  HTTP_ADDR: ":8080"
  LOG_LEVEL: {{ $g.logLevel | quote }}
  SHUTDOWN_TIMEOUT: {{ printf "%ds" (int $g.shutdownTimeoutSeconds) | quote }}
  {{- if .Values.callsBilling }}
  BILLING_URL: {{ printf "http://%s:8080" (include "order-system.fullname" (dict "root" . "name" "billing")) | quote }}
  {{- end }}
  {{- range $k, $v := .Values.env }}
  {{ $k }}: {{ $v | quote }}
  {{- end }}
---
apiVersion: v1
kind: Secret
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "order-system.labels" . | nindent 4 }}
    app.kubernetes.io/name: {{ $name }}
type: Opaque
stringData:
  DATABASE_URL: {{ printf "postgres://%s:%s@%s:%d/%s?sslmode=%s&search_path=%s" $db.role $db.password (include "order-system.dbHost" .) (int $g.database.port) $g.database.name $g.database.sslmode .Values.schema | quote }}
  AMQP_URL: {{ printf "amqp://%s:%s@%s:%d/%s" $g.amqp.user $g.amqp.password (include "order-system.amqpHost" .) (int $g.amqp.port) $g.amqp.vhost | quote }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "order-system.labels" . | nindent 4 }}
    app.kubernetes.io/name: {{ $name }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels:
      app.kubernetes.io/instance: {{ .Release.Name }}
      app.kubernetes.io/name: {{ $name }}
  template:
    metadata:
      labels:
        {{- include "order-system.labels" . | nindent 8 }}
        app.kubernetes.io/name: {{ $name }}
      annotations:
        # Roll the pods when their configuration changes.
        checksum/config: {{ printf "%v%v" .Values $g | sha256sum }}
    spec:
      # Longer than SHUTDOWN_TIMEOUT: in-flight requests and the outbox flush finish first.
      terminationGracePeriodSeconds: {{ add $g.shutdownTimeoutSeconds 10 }}
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile:
          type: RuntimeDefault
      initContainers:
        # Migrations run before the app starts; golang-migrate's advisory lock keeps
        # replicas from applying them twice.
        - name: migrate
          image: {{ printf "%sorder-system-%s:%s" $g.image.registry $name $g.image.tag | quote }}
          imagePullPolicy: {{ $g.image.pullPolicy }}
          args: ["migrate"]
          envFrom:
            - configMapRef: { name: {{ $fullname }} }
            - secretRef: { name: {{ $fullname }} }
          securityContext:
            {{- include "order-system.containerSecurityContext" . | nindent 12 }}
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
      containers:
        - name: {{ $name }}
          image: {{ printf "%sorder-system-%s:%s" $g.image.registry $name $g.image.tag | quote }}
          imagePullPolicy: {{ $g.image.pullPolicy }}
          ports:
            - name: http
              containerPort: 8080
          envFrom:
            - configMapRef: { name: {{ $fullname }} }
            - secretRef: { name: {{ $fullname }} }
          livenessProbe:
            httpGet: { path: /livez, port: http }
            periodSeconds: 10
            failureThreshold: 3
          readinessProbe:
            httpGet: { path: /readyz, port: http }
            periodSeconds: 5
            failureThreshold: 2
          securityContext:
            {{- include "order-system.containerSecurityContext" . | nindent 12 }}
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "order-system.labels" . | nindent 4 }}
    app.kubernetes.io/name: {{ $name }}
spec:
  selector:
    app.kubernetes.io/instance: {{ .Release.Name }}
    app.kubernetes.io/name: {{ $name }}
  ports:
    - name: http
      port: 8080
      targetPort: http
{{- end }}

{{/*
The objects of one service, one template per kind: each service subchart renders them from
files of its own (serviceaccount.yaml, configmap.yaml, secret.yaml, deployment.yaml,
service.yaml, pdb.yaml, hpa.yaml, servicemonitor.yaml and tests/test-readyz.yaml), each of
which includes one of these with the chart's context. A ServiceAccount (unless
serviceAccount.create is off), a ConfigMap, a Secret (unless existingSecret names one, or the
umbrella chart renders it), a Deployment (migrations in an init container), a Service, a helm
test pod, and when switched on a PodDisruptionBudget, a HorizontalPodAutoscaler and a
ServiceMonitor. They read the subchart's own values:
name, replicas, pool, resources, callsBilling, billingURL (its role and schema are in
global.database.users), nameOverride and fullnameOverride, and the usual pod settings of helm
create's and Bitnami's charts (image, imagePullSecrets, serviceAccount,
automountServiceAccountToken, podAnnotations, podLabels, nodeSelector, tolerations, affinity,
topologySpreadConstraints, priorityClassName, extraEnv). name stays the service's own (its
image, role, client id, OTEL_SERVICE_NAME); the overrides change its objects' names and
app.kubernetes.io/name.
*/}}

{{/*
What every object of a service derives from its values, as YAML (use with `include ... |
fromYaml`), so that the templates below agree: name (the service's own), appName
(app.kubernetes.io/name), fullname, labels and selector (YAML text), secret and secretKeys
(the Secret with DATABASE_URL and AMQP_URL, and the key of each variable in it), image,
pullPolicy, pullSecrets (YAML text), createSA, saName.
*/}}
{{- define "order-system.service.vars" -}}
{{- $name := .Values.name -}}
{{- $part := dict "root" . "name" $name "values" .Values -}}
{{- $appName := include "order-system.name" $part -}}
{{- $fullname := include "order-system.fullname" $part -}}
{{- $g := include "order-system.global" . | fromYaml -}}
{{- $keys := dict "DATABASE_URL" "DATABASE_URL" "AMQP_URL" "AMQP_URL" -}}
{{- if .Values.existingSecret -}}
{{- $keys = dict "DATABASE_URL" .Values.existingSecretKeys.databaseURL "AMQP_URL" .Values.existingSecretKeys.amqpURL -}}
{{- end -}}
{{- $sa := .Values.serviceAccount | default dict -}}
{{- $createSA := true -}}
{{- if hasKey $sa "create" -}}
{{- $createSA = not (empty $sa.create) -}}
{{- end -}}
{{- toYaml (dict
  "name" $name
  "appName" $appName
  "fullname" $fullname
  "labels" (include "order-system.labels" (dict "root" . "name" $appName "component" "backend"))
  "selector" (include "order-system.selectorLabels" (dict "root" . "name" $appName))
  "secret" (.Values.existingSecret | default $fullname)
  "secretKeys" $keys
  "image" (include "order-system.image" (dict "root" . "g" $g "name" $name "image" .Values.image))
  "pullPolicy" ((.Values.image | default dict).pullPolicy | default $g.image.pullPolicy)
  "pullSecrets" (include "order-system.imagePullSecrets" (dict "g" $g "values" .Values) | trim)
  "createSA" $createSA
  "saName" ($sa.name | default (ternary $fullname "default" $createSA))) -}}
{{- end }}

{{- define "order-system.service.serviceAccount" -}}
{{- $v := include "order-system.service.vars" . | fromYaml -}}
{{- if $v.createSA }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $v.saName }}
  labels:
    {{- $v.labels | nindent 4 }}
  {{- with (.Values.serviceAccount | default dict).annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
# No token is mounted from the account itself; a pod that needs one says so in its spec
# (automountServiceAccountToken), which overrides this.
automountServiceAccountToken: false
{{- end }}
{{- end }}

{{- define "order-system.service.configMap" -}}
{{- $v := include "order-system.service.vars" . | fromYaml -}}
{{- $g := include "order-system.global" . | fromYaml -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $v.fullname }}
  labels:
    {{- $v.labels | nindent 4 }}
data:
  HTTP_ADDR: ":8080"
  LOG_LEVEL: {{ $g.logLevel | quote }}
  SHUTDOWN_TIMEOUT: {{ printf "%ds" (int $g.shutdownTimeoutSeconds) | quote }}
  DB_MAX_OPEN_CONNS: {{ .Values.pool.maxOpenConns | int | quote }}
  {{- if .Values.pool.relayMaxOpenConns }}
  DB_RELAY_MAX_OPEN_CONNS: {{ .Values.pool.relayMaxOpenConns | int | quote }}
  {{- end }}
  {{- with include "order-system.otlpEndpoint" (dict "root" . "g" $g) }}
  OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
  OTEL_SERVICE_NAME: {{ $v.name | quote }}
  {{- end }}
  {{- if .Values.callsBilling }}
  BILLING_URL: {{ .Values.billingURL | default (printf "http://%s:8080" (include "order-system.fullname" (dict "root" . "name" "billing"))) | quote }}
  {{- end }}
  {{- if $g.auth.enabled }}
  AUTH: oidc
  AUTH_ISSUER: {{ include "order-system.authIssuer" (dict "root" . "g" $g) | required "global.auth.issuer (or global.auth.devProvider) is required with global.auth.enabled" | quote }}
  AUTH_AUDIENCE: {{ $g.auth.audience | quote }}
  AUTH_INTERNAL_AUDIENCE: {{ $g.auth.internalAudience | quote }}
  {{- if .Values.callsBilling }}
  AUTH_CLIENT_ID: {{ printf "%s-service" $v.name | quote }}
  {{- end }}
  {{- end }}
  {{- if $g.amqp.caSecret }}
  # Go trusts the certificates in these directories besides its bundle: the broker's CA.
  SSL_CERT_DIR: {{ printf "/etc/ssl/certs:%s" (include "order-system.caDir" "amqp") | quote }}
  {{- end }}
  {{- if and (not (hasKey .Values.env "GOMAXPROCS")) (include "order-system.atMostOneCPU" .Values.resources) }}
  # A CPU limit of at most one core: Go would still run two scheduler threads (its
  # container-aware default is never below 2), which spend more CPU than they gain.
  GOMAXPROCS: "1"
  {{- end }}
  {{- range $k, $val := .Values.env }}
  {{ $k }}: {{ $val | quote }}
  {{- end }}
{{- end }}

{{/*
atMostOneCPU renders "true" when resources set a CPU limit of at most one core ("500m", "1",
0.5), and nothing otherwise (no limit, or more than a core).
*/}}
{{- define "order-system.atMostOneCPU" -}}
{{- $cpu := toString (dig "limits" "cpu" "" .) -}}
{{- $milli := 0 -}}
{{- if hasSuffix "m" $cpu -}}
{{- $milli = trimSuffix "m" $cpu | atoi -}}
{{- else if $cpu -}}
{{- $milli = mulf (float64 $cpu) 1000 | int -}}
{{- end -}}
{{- if and (gt $milli 0) (le $milli 1000) }}true{{ end -}}
{{- end }}

{{/*
The service's Secret when the subchart is installed on its own; under the umbrella chart its
credentials template renders it (global.managedCredentials).
*/}}
{{- define "order-system.service.secret" -}}
{{- $g := include "order-system.global" . | fromYaml -}}
{{- if not (or .Values.existingSecret $g.managedCredentials) }}
{{- $name := .Values.name }}
{{- $db := get $g.database.users $name }}
{{ include "order-system.serviceSecret" (dict "root" . "g" $g "name" $name "values" .Values
  "dbPassword" ($db.password | required (printf "global.database.users.%s.password (or %s.existingSecret) is required when the chart is installed on its own" $name $name))
  "amqpPassword" ($g.amqp.password | required "global.amqp.password is required when the chart is installed on its own")) }}
{{- end }}
{{- end }}

{{- define "order-system.service.deployment" -}}
{{- $v := include "order-system.service.vars" . | fromYaml -}}
{{- $g := include "order-system.global" . | fromYaml -}}
{{- $secretEnv := include "order-system.secretEnv" (dict "secret" $v.secret "env" $v.secretKeys) -}}
{{- /* The variables the chart sets in the main container: extraEnv may not set them twice. */ -}}
{{- $ownEnv := keys $v.secretKeys -}}
{{- if and $g.auth.enabled .Values.callsBilling -}}
{{- $ownEnv = append $ownEnv "AUTH_CLIENT_SECRET" -}}
{{- end -}}
{{- range .Values.extraEnv -}}
{{- if has .name $ownEnv -}}
{{- fail (printf "%s.extraEnv: %s is set by the chart (or twice in extraEnv)" $v.name .name) -}}
{{- end -}}
{{- $ownEnv = append $ownEnv .name -}}
{{- end -}}
{{- /* The pods this Deployment may run at once: with more than one, they are spread over nodes. */ -}}
{{- $maxPods := ternary $g.autoscaling.maxReplicas .Values.replicas $g.autoscaling.enabled -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $v.fullname }}
  labels:
    {{- $v.labels | nindent 4 }}
spec:
  {{- if not $g.autoscaling.enabled }}
  replicas: {{ .Values.replicas }}
  {{- end }}
  selector:
    matchLabels:
      {{- $v.selector | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      # A new pod is Ready before an old one goes: the capacity never drops during a rollout.
      maxUnavailable: 0
      maxSurge: 1
  template:
    metadata:
      labels:
        {{- $v.labels | nindent 8 }}
        {{- with include "order-system.extraPodMetadata" (dict "extra" .Values.podLabels "own" $v.labels "what" (printf "%s.podLabels" $v.name)) | trim }}
        {{- . | nindent 8 }}
        {{- end }}
      annotations:
        # Roll the pods when their configuration changes.
        checksum/config: {{ include "order-system.configChecksum" (dict "values" .Values "g" $g) }}
        {{- /* Where a Prometheus finds the metrics; podAnnotations may say otherwise. */}}
        {{- range $k, $val := include "order-system.scrapeAnnotations" (dict "g" $g "port" 8080 "path" "/metrics") | fromYaml }}
        {{- if not (hasKey ($.Values.podAnnotations | default dict) $k) }}
        {{ $k }}: {{ $val | quote }}
        {{- end }}
        {{- end }}
        {{- with include "order-system.extraPodMetadata" (dict "extra" .Values.podAnnotations "own" "checksum/config: x" "what" (printf "%s.podAnnotations" $v.name)) | trim }}
        {{- . | nindent 8 }}
        {{- end }}
    spec:
      # The preStop pause, then SHUTDOWN_TIMEOUT for in-flight requests and the outbox
      # flush, then 10 s to spare before SIGKILL.
      terminationGracePeriodSeconds: {{ add $g.preStopSeconds $g.shutdownTimeoutSeconds 10 }}
      serviceAccountName: {{ $v.saName }}
      # The services never call the Kubernetes API: no token unless the values ask for one.
      automountServiceAccountToken: {{ .Values.automountServiceAccountToken | default false }}
      {{- with $v.pullSecrets }}
      imagePullSecrets:
        {{- . | nindent 8 }}
      {{- end }}
      {{- with .Values.priorityClassName }}
      priorityClassName: {{ . | quote }}
      {{- end }}
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if .Values.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml .Values.topologySpreadConstraints | nindent 8 }}
      {{- else if gt (int $maxPods) 1 }}
      # More than one pod: on different nodes when the scheduler can, never left unscheduled.
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- $v.selector | nindent 14 }}
      {{- end }}
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile:
          type: RuntimeDefault
      {{- with include "order-system.caVolumes" (dict "g" $g) }}
      volumes:
        {{- . | nindent 8 }}
      {{- end }}
      initContainers:
        # Migrations run before the app starts; golang-migrate's advisory lock keeps
        # replicas from applying them twice.
        - name: migrate
          image: {{ $v.image | quote }}
          imagePullPolicy: {{ $v.pullPolicy }}
          args: ["migrate"]
          envFrom:
            - configMapRef: { name: {{ $v.fullname }} }
          env:
            {{- $secretEnv | nindent 12 }}
          {{- with include "order-system.caMounts" (dict "g" $g) }}
          volumeMounts:
            {{- . | nindent 12 }}
          {{- end }}
          securityContext:
            {{- include "order-system.containerSecurityContext" . | nindent 12 }}
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
      containers:
        - name: {{ $v.name }}
          image: {{ $v.image | quote }}
          imagePullPolicy: {{ $v.pullPolicy }}
          ports:
            - name: http
              containerPort: 8080
          envFrom:
            - configMapRef: { name: {{ $v.fullname }} }
          env:
            {{- $secretEnv | nindent 12 }}
          {{- if and $g.auth.enabled .Values.callsBilling }}
            - name: AUTH_CLIENT_SECRET
              valueFrom:
                secretKeyRef: { name: {{ include "order-system.authClientsSecret" (dict "root" . "g" $g) }}, key: {{ printf "%s-service" $v.name }} }
          {{- end }}
          {{- with .Values.extraEnv }}
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with include "order-system.caMounts" (dict "g" $g) }}
          volumeMounts:
            {{- . | nindent 12 }}
          {{- end }}
          lifecycle:
            # Keep serving while the endpoint removal reaches every proxy; only then does
            # SIGTERM start the graceful shutdown. A sleep action: the image has no shell.
            preStop:
              sleep: { seconds: {{ $g.preStopSeconds }} }
          # /readyz bounds its checks at 2 s: the timeouts leave room above that.
          livenessProbe:
            httpGet: { path: /livez, port: http }
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          readinessProbe:
            httpGet: { path: /readyz, port: http }
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 2
          securityContext:
            {{- include "order-system.containerSecurityContext" . | nindent 12 }}
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
{{- end }}

{{- define "order-system.service.service" -}}
{{- $v := include "order-system.service.vars" . | fromYaml -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ $v.fullname }}
  labels:
    {{- $v.labels | nindent 4 }}
spec:
  selector:
    {{- $v.selector | nindent 4 }}
  ports:
    - name: http
      port: 8080
      targetPort: http
{{- end }}

{{- define "order-system.service.test" -}}
{{- $v := include "order-system.service.vars" . | fromYaml -}}
# helm test: the Service answers /readyz from a Ready pod (the image's own probe: no curl).
apiVersion: v1
kind: Pod
metadata:
  name: {{ $v.fullname }}-test
  labels:
    {{- /* Not the service's name: its Service must not select this pod. */}}
    {{- include "order-system.labels" (dict "root" . "name" (printf "%s-test" $v.appName | trunc 63 | trimSuffix "-") "component" "test") | nindent 4 }}
  annotations:
    helm.sh/hook: test
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  {{- /* The service's image and nodes: its pull secrets, nodeSelector and tolerations. */}}
  {{- with $v.pullSecrets }}
  imagePullSecrets:
    {{- . | nindent 4 }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: readyz
      image: {{ $v.image | quote }}
      imagePullPolicy: {{ $v.pullPolicy }}
      args: ["healthcheck"]
      env:
        - { name: HTTP_ADDR, value: {{ printf "%s:8080" $v.fullname | quote }} }
      securityContext:
        {{- include "order-system.containerSecurityContext" . | nindent 8 }}
      resources:
        requests: { cpu: 10m, memory: 16Mi }
        limits: { cpu: 100m, memory: 32Mi }
{{- end }}

{{- define "order-system.service.podDisruptionBudget" -}}
{{- $g := include "order-system.global" . | fromYaml -}}
{{- if $g.podDisruptionBudget.enabled }}
{{- $v := include "order-system.service.vars" . | fromYaml }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $v.fullname }}
  labels:
    {{- $v.labels | nindent 4 }}
spec:
  minAvailable: {{ $g.podDisruptionBudget.minAvailable }}
  selector:
    matchLabels:
      {{- $v.selector | nindent 6 }}
{{- end }}
{{- end }}

{{/*
A ServiceMonitor of the Prometheus Operator (monitoring.coreos.com/v1) for the service's pods
behind its Service, when global.metrics.serviceMonitor is on. Rendered only where the API server
serves it (helm template: --api-versions monitoring.coreos.com/v1/ServiceMonitor); asked for
without it, the chart refuses rather than leave the service unscraped unnoticed. The job of
the series is the service's own name, as deploy/prometheus/rules.yml and the dashboards
expect, whatever the Service is called. global.metrics.serviceMonitor.labels go on the object (a
Prometheus selects ServiceMonitors by their labels), never over the chart's own.
*/}}
{{- define "order-system.service.serviceMonitor" -}}
{{- $g := include "order-system.global" . | fromYaml -}}
{{- $sm := $g.metrics.serviceMonitor -}}
{{- if $sm.enabled }}
{{- if not (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor") }}
{{- fail "global.metrics.serviceMonitor.enabled: the cluster has no Prometheus Operator (monitoring.coreos.com/v1 ServiceMonitor): install its CRDs first (helm template: --api-versions monitoring.coreos.com/v1/ServiceMonitor), or leave global.metrics.serviceMonitor.enabled off" }}
{{- end }}
{{- $v := include "order-system.service.vars" . | fromYaml }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ $v.fullname }}
  labels:
    {{- $v.labels | nindent 4 }}
    {{- with include "order-system.extraPodMetadata" (dict "extra" $sm.labels "own" $v.labels "what" "global.metrics.serviceMonitor.labels") | trim }}
    {{- . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- $v.selector | nindent 6 }}
  endpoints:
    - port: http
      path: /metrics
      {{- with $sm.interval }}
      interval: {{ . | quote }}
      {{- end }}
      relabelings:
        - action: replace
          targetLabel: job
          replacement: {{ $v.name }}
{{- end }}
{{- end }}

{{- define "order-system.service.horizontalPodAutoscaler" -}}
{{- $g := include "order-system.global" . | fromYaml -}}
{{- if $g.autoscaling.enabled }}
{{- $v := include "order-system.service.vars" . | fromYaml }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $v.fullname }}
  labels:
    {{- $v.labels | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $v.fullname }}
  minReplicas: {{ $g.autoscaling.minReplicas }}
  maxReplicas: {{ $g.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $g.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- end }}

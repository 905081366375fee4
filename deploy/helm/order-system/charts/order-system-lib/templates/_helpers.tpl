{{/*
Templates shared by the umbrella chart and every subchart. They live in this library chart so
that each subchart (a service, PostgreSQL, RabbitMQ) also renders and installs on its own.
*/}}

{{/*
The labels of every object the charts render, pods' templates included: the recommended
app.kubernetes.io set and helm.sh/chart, as helm create and Bitnami's charts write them.
dict: root (the chart's context: its Chart and Release), name (app.kubernetes.io/name, see
order-system.name), component (its role: backend, database, message-broker, ...). version and
helm.sh/chart come from the chart that renders the object, with a "+" (semver build
metadata), which a label value cannot hold, written "_".
*/}}
{{- define "order-system.labels" -}}
{{ include "order-system.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | toString | replace "+" "_" | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: order-system
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ include "order-system.chart" .root }}
{{- end }}

{{/*
The labels that select a part's pods: Deployments', StatefulSets' and PodDisruptionBudgets'
selectors, Services', NetworkPolicies'. A selector is immutable, so nothing that changes with
a chart or app version belongs here. dict: root, name.
*/}}
{{- define "order-system.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end }}

{{/* helm.sh/chart: <chart>-<version>, a valid label value. */}}
{{- define "order-system.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/*
The app.kubernetes.io/name of a part: its nameOverride, else its name. dict: name, values (the
part's chart values; omitted for parts without overrides).
*/}}
{{- define "order-system.name" -}}
{{- (.values | default dict).nameOverride | default .name | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/*
The Kubernetes name of a part of this release, as helm create's fullname helper makes it: its
fullnameOverride, else <release>-<nameOverride, else its name>. dict: root, name, values (as
for order-system.name). Unlike helm create's, a release name that contains the part's name is
not taken as the whole name: the release order-system would name the order service's objects
order-system, and renaming them on an upgrade would replace the running Deployment.
*/}}
{{- define "order-system.fullname" -}}
{{- $values := .values | default dict -}}
{{- if $values.fullnameOverride -}}
{{- $values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .root.Release.Name (include "order-system.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end }}

{{- define "order-system.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{/*
The defaults of .Values.global, for a subchart installed on its own; the umbrella chart's
values.yaml documents each of them and sets the same values.
*/}}
{{- define "order-system.globalDefaults" -}}
image:
  registry: ""
  tag: ""
  pullPolicy: IfNotPresent
imagePullSecrets: []
database:
  host: ""
  port: 5432
  name: order_system
  sslmode: disable
  caSecret: ""
  users:
    user: { role: user_service, schema: users, password: "" }
    billing: { role: billing_service, schema: billing, password: "" }
    order: { role: order_service, schema: orders, password: "" }
    notification: { role: notification_service, schema: notifications, password: "" }
amqp:
  host: ""
  port: 5672
  user: order
  password: ""
  vhost: ""
  tls: false
  caSecret: ""
managedCredentials: false
logLevel: info
auth:
  enabled: false
  issuer: ""
  audience: order-system
  internalAudience: order-system-internal
  clientsSecret: ""
  devProvider: false
tracing:
  otlpEndpoint: ""
shutdownTimeoutSeconds: 20
preStopSeconds: 5
podDisruptionBudget:
  enabled: false
  minAvailable: 1
autoscaling:
  enabled: false
  minReplicas: 2
  maxReplicas: 4
  targetCPUUtilizationPercentage: 80
{{- end }}

{{/* .Values.global over the defaults above, as YAML: use with `include ... | fromYaml`. */}}
{{- define "order-system.global" -}}
{{- $defaults := include "order-system.globalDefaults" . | fromYaml -}}
{{- toYaml (mustMergeOverwrite $defaults (deepCopy (.Values.global | default dict))) -}}
{{- end }}

{{/*
A value escaped for the user-information or path part of a URL: any password works. urlquery
escapes everything but letters, digits and -_.~, and writes a space as "+", which a URL's
user information would read as a plus: hence %20.
*/}}
{{- define "order-system.urlEscape" -}}
{{- . | toString | urlquery | replace "+" "%20" -}}
{{- end }}

{{- define "order-system.dbHost" -}}
{{- .g.database.host | default (printf "%s-postgresql" .root.Release.Name) -}}
{{- end }}

{{/* The OpenID provider's issuer URL: auth.issuer, or the development provider's. */}}
{{- define "order-system.authIssuer" -}}
{{- .g.auth.issuer | default (ternary (printf "http://%s:8070" (include "order-system.fullname" (dict "root" .root "name" "devidp"))) "" .g.auth.devProvider) -}}
{{- end }}

{{/* The Secret holding the services' client secrets at the provider. */}}
{{- define "order-system.authClientsSecret" -}}
{{- .g.auth.clientsSecret | default (include "order-system.fullname" (dict "root" .root "name" "auth-clients")) -}}
{{- end }}

{{- define "order-system.amqpHost" -}}
{{- .g.amqp.host | default (printf "%s-rabbitmq" .root.Release.Name) -}}
{{- end }}

{{/*
The image of a service, as Bitnami's charts compose it: <registry>/<repository>:<tag>, or
<registry>/<repository>@<digest> when a digest is given (it pins the image, the tag is then
left out). dict: root, g, name, image (the part's image values; omitted for parts without
them). Each empty field falls back: registry to global.image.registry (written with or
without its trailing "/"; empty: no registry, as for images built into the node), repository
to order-system-<name>, tag to global.image.tag, then to the chart's appVersion.
*/}}
{{- define "order-system.image" -}}
{{- $image := .image | default dict -}}
{{- $registry := $image.registry | default .g.image.registry | default "" | trimSuffix "/" -}}
{{- $repository := $image.repository | default (printf "order-system-%s" .name) -}}
{{- if $registry -}}
{{- $repository = printf "%s/%s" $registry $repository -}}
{{- end -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository ($image.tag | default .g.image.tag | default .root.Chart.AppVersion | toString) -}}
{{- end -}}
{{- end }}

{{/*
A pod's imagePullSecrets: global.imagePullSecrets, then the part's own (values.imagePullSecrets),
each once. Either list holds Secret names or {name: ...} objects, as helm create's and
Bitnami's charts take them. Renders the list's items, nothing when both are empty. dict: g,
values (omitted for parts without their own).
*/}}
{{- define "order-system.imagePullSecrets" -}}
{{- $names := list -}}
{{- range concat (.g.imagePullSecrets | default list) ((.values | default dict).imagePullSecrets | default list) -}}
{{- $name := . -}}
{{- if kindIs "map" . -}}
{{- $name = .name -}}
{{- end -}}
{{- if and $name (not (has $name $names)) -}}
{{- $names = append $names $name -}}
{{- end -}}
{{- end -}}
{{- range $names }}
- name: {{ . | quote }}
{{- end }}
{{- end }}

{{/*
The Secret of a service's DATABASE_URL and AMQP_URL, the passwords escaped into the URLs.
dict: root, g (the global values), name (the service), values (the service chart's values,
for its name overrides), dbPassword, amqpPassword. The service
template renders it when a subchart is installed on its own; under the umbrella chart its
credentials template does, with the passwords it generates (global.managedCredentials).
*/}}
{{- define "order-system.serviceSecret" -}}
{{- $db := get .g.database.users .name -}}
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "order-system.fullname" . }}
  labels:
    {{- include "order-system.labels" (dict "root" .root "name" (include "order-system.name" .) "component" "backend") | nindent 4 }}
type: Opaque
stringData:
  DATABASE_URL: {{ printf "postgres://%s:%s@%s:%d/%s?sslmode=%s&search_path=%s%s" (include "order-system.urlEscape" $db.role) (include "order-system.urlEscape" .dbPassword) (include "order-system.dbHost" .) (int .g.database.port) (include "order-system.urlEscape" .g.database.name) (urlquery .g.database.sslmode) (urlquery $db.schema) (ternary (printf "&sslrootcert=%s/ca.crt" (include "order-system.caDir" "database")) "" (not (empty .g.database.caSecret))) | quote }}
  AMQP_URL: {{ printf "%s://%s:%s@%s:%d/%s" (ternary "amqps" "amqp" .g.amqp.tls) (include "order-system.urlEscape" .g.amqp.user) (include "order-system.urlEscape" .amqpPassword) (include "order-system.amqpHost" .) (int .g.amqp.port) (include "order-system.urlEscape" .g.amqp.vhost) | quote }}
{{- end }}

{{/*
Environment entries read from a Secret: dict secret (its name), env (variable -> key). With
an existingSecret the keys are existingSecretKeys' (named as one's own Secret names them),
with the chart's Secret the variables' own names.
*/}}
{{- define "order-system.secretEnv" -}}
{{- range $var, $key := .env }}
- name: {{ $var }}
  valueFrom:
    secretKeyRef: { name: {{ $.secret }}, key: {{ $key }} }
{{- end }}
{{- end }}

{{/* Where a CA certificate from global.database.caSecret or global.amqp.caSecret is mounted. */}}
{{- define "order-system.caDir" -}}
/etc/order-system/ca/{{ . }}
{{- end }}

{{/*
The CA mounts of a service's containers (the volumes are order-system.caVolumes): the
database's CA is named in DATABASE_URL (sslrootcert); the broker's is added to the pool Go
trusts besides the system's (SSL_CERT_DIR), which amqps:// uses. dict: g.
*/}}
{{- define "order-system.caMounts" -}}
{{- if .g.database.caSecret }}
- { name: database-ca, mountPath: {{ include "order-system.caDir" "database" }}, readOnly: true }
{{- end }}
{{- if .g.amqp.caSecret }}
- { name: amqp-ca, mountPath: {{ include "order-system.caDir" "amqp" }}, readOnly: true }
{{- end }}
{{- end }}

{{- define "order-system.caVolumes" -}}
{{- if .g.database.caSecret }}
- name: database-ca
  secret: { secretName: {{ .g.database.caSecret }}, items: [{ key: ca.crt, path: ca.crt }] }
{{- end }}
{{- if .g.amqp.caSecret }}
- name: amqp-ca
  secret: { secretName: {{ .g.amqp.caSecret }}, items: [{ key: ca.crt, path: ca.crt }] }
{{- end }}
{{- end }}

{{/*
The bundled PostgreSQL's Secrets: its superuser's password, and the script that sets the
services' role passwords on the first start (in a Secret, not the init ConfigMap). dict: root,
g, superuserPassword (skipped when empty: postgresql.existingSecret), rolePasswords (service
-> password).
*/}}
{{- define "order-system.postgresqlSecrets" -}}
{{- $fullname := include "order-system.fullname" (dict "root" .root "name" "postgresql") -}}
{{- if .superuserPassword }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "order-system.labels" (dict "root" .root "name" "postgresql" "component" "database") | nindent 4 }}
type: Opaque
stringData:
  POSTGRES_PASSWORD: {{ .superuserPassword | quote }}
---
{{- end }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ $fullname }}-passwords
  labels:
    {{- include "order-system.labels" (dict "root" .root "name" "postgresql" "component" "database") | nindent 4 }}
type: Opaque
stringData:
  20-passwords.sql: |
    {{- range $svc, $u := .g.database.users }}
    ALTER ROLE "{{ $u.role | replace "\"" "\"\"" }}" PASSWORD '{{ get $.rolePasswords $svc | toString | replace "'" "''" }}';
    {{- end }}
{{- end }}

{{/* The bundled RabbitMQ's Secret: its user and password. dict: root, g, password. */}}
{{- define "order-system.rabbitmqSecret" -}}
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "order-system.fullname" (dict "root" .root "name" "rabbitmq") }}
  labels:
    {{- include "order-system.labels" (dict "root" .root "name" "rabbitmq" "component" "message-broker") | nindent 4 }}
type: Opaque
stringData:
  RABBITMQ_DEFAULT_USER: {{ .g.amqp.user | quote }}
  RABBITMQ_DEFAULT_PASS: {{ .password | quote }}
{{- end }}

{{/*
checksum/config of a service's pods: a hash of its values and the global ones, so that a
change of what its ConfigMap and Secret hold rolls the pods. The values that are written into
the pod template itself (image, pull secrets, service account, scheduling, pod labels and
annotations, extraEnv) change the template anyway and are left out, so that the hash of
given values stays the same as the chart gains such settings. The globals appear in .values
(global) and in the values of the subchart's own dependency (order-system-lib.global) as well
as in g. dict: values, g.
*/}}
{{- define "order-system.configChecksum" -}}
{{- $values := omit .values "image" "imagePullSecrets" "serviceAccount" "automountServiceAccountToken"
  "podAnnotations" "podLabels" "nodeSelector" "tolerations" "affinity" "topologySpreadConstraints"
  "priorityClassName" "extraEnv" -}}
{{- if hasKey $values "global" -}}
{{- $_ := set $values "global" (omit ($values.global | default dict) "imagePullSecrets") -}}
{{- end -}}
{{- range $k, $v := $values -}}
{{- if and (kindIs "map" $v) (hasKey $v "global") -}}
{{- $_ := set $values $k (set (omit $v "global") "global" (omit ($v.global | default dict) "imagePullSecrets")) -}}
{{- end -}}
{{- end -}}
{{- printf "%v%v" $values (omit .g "imagePullSecrets") | sha256sum -}}
{{- end }}

{{/*
Extra entries for a pod template's labels or annotations (podLabels, podAnnotations), values
as strings. A key the chart sets itself is refused rather than overridden: the standard
labels select the pods, and checksum/config rolls them. dict: extra (the user's map), own
(the chart's entries, as YAML), what (the value's name, for the message).
*/}}
{{- define "order-system.extraPodMetadata" -}}
{{- $own := .own | fromYaml -}}
{{- range $k, $v := .extra }}
{{- if hasKey $own $k }}
{{- fail (printf "%s: %s is set by the chart" $.what $k) }}
{{- end }}
{{ $k | quote }}: {{ $v | toString | quote }}
{{- end }}
{{- end }}

{{/*
order-system.service renders everything one service needs: ServiceAccount (unless
serviceAccount.create is off), ConfigMap, Secret (unless existingSecret names one), Deployment
(migrations in an init container), Service, and when switched on a PodDisruptionBudget and a
HorizontalPodAutoscaler. Each service subchart includes it with its own values: name,
replicas, pool, resources, callsBilling, billingURL (its role and schema are in
global.database.users), nameOverride and fullnameOverride, and the usual pod settings of helm
create's and Bitnami's charts (image, imagePullSecrets, serviceAccount,
automountServiceAccountToken, podAnnotations, podLabels, nodeSelector, tolerations, affinity,
topologySpreadConstraints, priorityClassName, extraEnv). name stays the service's own (its
image, role, client id, OTEL_SERVICE_NAME); the overrides change its objects' names and
app.kubernetes.io/name.
*/}}
{{- define "order-system.service" -}}
{{- $name := .Values.name -}}
{{- $part := dict "root" . "name" $name "values" .Values -}}
{{- $fullname := include "order-system.fullname" $part -}}
{{- $labels := include "order-system.labels" (dict "root" . "name" (include "order-system.name" $part) "component" "backend") -}}
{{- $selector := include "order-system.selectorLabels" (dict "root" . "name" (include "order-system.name" $part)) -}}
{{- $g := include "order-system.global" . | fromYaml -}}
{{- $db := get $g.database.users $name -}}
{{- $secret := .Values.existingSecret | default $fullname -}}
{{- $keys := dict "DATABASE_URL" "DATABASE_URL" "AMQP_URL" "AMQP_URL" -}}
{{- if .Values.existingSecret -}}
{{- $keys = dict "DATABASE_URL" .Values.existingSecretKeys.databaseURL "AMQP_URL" .Values.existingSecretKeys.amqpURL -}}
{{- end -}}
{{- $secretEnv := include "order-system.secretEnv" (dict "secret" $secret "env" $keys) -}}
{{- $image := include "order-system.image" (dict "root" . "g" $g "name" $name "image" .Values.image) -}}
{{- $pullPolicy := (.Values.image | default dict).pullPolicy | default $g.image.pullPolicy -}}
{{- $pullSecrets := include "order-system.imagePullSecrets" (dict "g" $g "values" .Values) | trim -}}
{{- $sa := .Values.serviceAccount | default dict -}}
{{- $createSA := true -}}
{{- if hasKey $sa "create" -}}
{{- $createSA = not (empty $sa.create) -}}
{{- end -}}
{{- $saName := $sa.name | default (ternary $fullname "default" $createSA) -}}
{{- /* The variables the chart sets in the main container: extraEnv may not set them twice. */ -}}
{{- $ownEnv := keys $keys -}}
{{- if and $g.auth.enabled .Values.callsBilling -}}
{{- $ownEnv = append $ownEnv "AUTH_CLIENT_SECRET" -}}
{{- end -}}
{{- range .Values.extraEnv -}}
{{- if has .name $ownEnv -}}
{{- fail (printf "%s.extraEnv: %s is set by the chart (or twice in extraEnv)" $name .name) -}}
{{- end -}}
{{- $ownEnv = append $ownEnv .name -}}
{{- end -}}
{{- /* The pods this Deployment may run at once: with more than one, they are spread over nodes. */ -}}
{{- $maxPods := ternary $g.autoscaling.maxReplicas .Values.replicas $g.autoscaling.enabled -}}
{{- if $createSA }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $saName }}
  labels:
    {{- $labels | nindent 4 }}
  {{- with $sa.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
# No token is mounted from the account itself; a pod that needs one says so in its spec
# (automountServiceAccountToken), which overrides this.
automountServiceAccountToken: false
---
{{- end }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $fullname }}
  labels:
    {{- $labels | nindent 4 }}
data:
  HTTP_ADDR: ":8080"
  LOG_LEVEL: {{ $g.logLevel | quote }}
  SHUTDOWN_TIMEOUT: {{ printf "%ds" (int $g.shutdownTimeoutSeconds) | quote }}
  DB_MAX_OPEN_CONNS: {{ .Values.pool.maxOpenConns | int | quote }}
  {{- if .Values.pool.relayMaxOpenConns }}
  DB_RELAY_MAX_OPEN_CONNS: {{ .Values.pool.relayMaxOpenConns | int | quote }}
  {{- end }}
  {{- with $g.tracing.otlpEndpoint }}
  OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
  OTEL_SERVICE_NAME: {{ $name | quote }}
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
  AUTH_CLIENT_ID: {{ printf "%s-service" $name | quote }}
  {{- end }}
  {{- end }}
  {{- if $g.amqp.caSecret }}
  # Go trusts the certificates in these directories besides its bundle: the broker's CA.
  SSL_CERT_DIR: {{ printf "/etc/ssl/certs:%s" (include "order-system.caDir" "amqp") | quote }}
  {{- end }}
  {{- range $k, $v := .Values.env }}
  {{ $k }}: {{ $v | quote }}
  {{- end }}
{{- if not (or .Values.existingSecret $g.managedCredentials) }}
---
{{ include "order-system.serviceSecret" (dict "root" . "g" $g "name" $name "values" .Values
  "dbPassword" ($db.password | required (printf "global.database.users.%s.password (or %s.existingSecret) is required when the chart is installed on its own" $name $name))
  "amqpPassword" ($g.amqp.password | required "global.amqp.password is required when the chart is installed on its own")) }}
{{- end }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $fullname }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  {{- if not $g.autoscaling.enabled }}
  replicas: {{ .Values.replicas }}
  {{- end }}
  selector:
    matchLabels:
      {{- $selector | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      # A new pod is Ready before an old one goes: the capacity never drops during a rollout.
      maxUnavailable: 0
      maxSurge: 1
  template:
    metadata:
      labels:
        {{- $labels | nindent 8 }}
        {{- with include "order-system.extraPodMetadata" (dict "extra" .Values.podLabels "own" $labels "what" (printf "%s.podLabels" $name)) | trim }}
        {{- . | nindent 8 }}
        {{- end }}
      annotations:
        # Roll the pods when their configuration changes.
        checksum/config: {{ include "order-system.configChecksum" (dict "values" .Values "g" $g) }}
        {{- with include "order-system.extraPodMetadata" (dict "extra" .Values.podAnnotations "own" "checksum/config: x" "what" (printf "%s.podAnnotations" $name)) | trim }}
        {{- . | nindent 8 }}
        {{- end }}
    spec:
      # The preStop pause, then SHUTDOWN_TIMEOUT for in-flight requests and the outbox
      # flush, then 10 s to spare before SIGKILL.
      terminationGracePeriodSeconds: {{ add $g.preStopSeconds $g.shutdownTimeoutSeconds 10 }}
      serviceAccountName: {{ $saName }}
      # The services never call the Kubernetes API: no token unless the values ask for one.
      automountServiceAccountToken: {{ .Values.automountServiceAccountToken | default false }}
      {{- with $pullSecrets }}
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
              {{- $selector | nindent 14 }}
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
          image: {{ $image | quote }}
          imagePullPolicy: {{ $pullPolicy }}
          args: ["migrate"]
          envFrom:
            - configMapRef: { name: {{ $fullname }} }
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
        - name: {{ $name }}
          image: {{ $image | quote }}
          imagePullPolicy: {{ $pullPolicy }}
          ports:
            - name: http
              containerPort: 8080
          envFrom:
            - configMapRef: { name: {{ $fullname }} }
          env:
            {{- $secretEnv | nindent 12 }}
          {{- if and $g.auth.enabled .Values.callsBilling }}
            - name: AUTH_CLIENT_SECRET
              valueFrom:
                secretKeyRef: { name: {{ include "order-system.authClientsSecret" (dict "root" . "g" $g) }}, key: {{ printf "%s-service" $name }} }
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
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullname }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  selector:
    {{- $selector | nindent 4 }}
  ports:
    - name: http
      port: 8080
      targetPort: http
---
# helm test: the Service answers /readyz from a Ready pod (the image's own probe: no curl).
apiVersion: v1
kind: Pod
metadata:
  name: {{ $fullname }}-test
  labels:
    {{- /* Not the service's name: its Service must not select this pod. */}}
    {{- include "order-system.labels" (dict "root" . "name" (printf "%s-test" (include "order-system.name" $part) | trunc 63 | trimSuffix "-") "component" "test") | nindent 4 }}
  annotations:
    helm.sh/hook: test
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  {{- /* The service's image and nodes: its pull secrets, nodeSelector and tolerations. */}}
  {{- with $pullSecrets }}
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
      image: {{ $image | quote }}
      imagePullPolicy: {{ $pullPolicy }}
      args: ["healthcheck"]
      env:
        - { name: HTTP_ADDR, value: {{ printf "%s:8080" $fullname | quote }} }
      securityContext:
        {{- include "order-system.containerSecurityContext" . | nindent 8 }}
      resources:
        requests: { cpu: 10m, memory: 16Mi }
        limits: { cpu: 100m, memory: 32Mi }
{{- if $g.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $fullname }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  minAvailable: {{ $g.podDisruptionBudget.minAvailable }}
  selector:
    matchLabels:
      {{- $selector | nindent 6 }}
{{- end }}
{{- if $g.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $fullname }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $fullname }}
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

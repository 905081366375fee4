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
  targetSessionAttrs: ""
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
  jaeger: false
metrics:
  scrapeAnnotations: true
  serviceMonitor:
    enabled: false
    interval: 30s
    labels: {}
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

{{/*
A service's DATABASE_URL. One host: postgres://<role>:<password>@<host>:<port>/<database>?...
Several (global.database.host "a,b:5433": the nodes of a highly available PostgreSQL, each
host:port or host with global.database.port) go in the query, as lib/pq takes them
(postgres://<role>:<password>@/<database>?host=a,b&port=5432,5433&...), with
target_session_attrs=read-write unless global.database.targetSessionAttrs says otherwise:
the services try the hosts in turn and keep the one that takes writes, the primary.
dict: root, g, db (the service's role and schema), password.
*/}}
{{- define "order-system.databaseURL" -}}
{{- $hosts := list -}}
{{- $ports := list -}}
{{- range splitList "," (.g.database.host | default (printf "%s-postgresql" .root.Release.Name)) -}}
{{- if trim . -}}
{{- $hp := splitList ":" (trim .) -}}
{{- $hosts = append $hosts (first $hp) -}}
{{- $ports = append $ports (ternary (last $hp) (toString (int $.g.database.port)) (gt (len $hp) 1)) -}}
{{- end -}}
{{- end -}}
{{- $attrs := .g.database.targetSessionAttrs | default (ternary "read-write" "" (gt (len $hosts) 1)) -}}
{{- $query := printf "sslmode=%s&search_path=%s" (urlquery .g.database.sslmode) (urlquery .db.schema) -}}
{{- if $attrs -}}
{{- $query = printf "%s&target_session_attrs=%s" $query (urlquery $attrs) -}}
{{- end -}}
{{- if .g.database.caSecret -}}
{{- $query = printf "%s&sslrootcert=%s/ca.crt" $query (include "order-system.caDir" "database") -}}
{{- end -}}
{{- $auth := printf "%s:%s" (include "order-system.urlEscape" .db.role) (include "order-system.urlEscape" .password) -}}
{{- $name := include "order-system.urlEscape" .g.database.name -}}
{{- if eq (len $hosts) 1 -}}
{{- printf "postgres://%s@%s:%s/%s?%s" $auth (first $hosts) (first $ports) $name $query -}}
{{- else -}}
{{- printf "postgres://%s@/%s?host=%s&port=%s&%s" $auth $name (urlquery (join "," $hosts) | replace "%2C" ",") (join "," $ports) $query -}}
{{- end -}}
{{- end }}

{{/* The OpenID provider's issuer URL: auth.issuer, or the development provider's. */}}
{{- define "order-system.authIssuer" -}}
{{- .g.auth.issuer | default (ternary (printf "http://%s:8070" (include "order-system.fullname" (dict "root" .root "name" "devidp"))) "" .g.auth.devProvider) -}}
{{- end }}

{{/*
Where the services export their traces (OTLP/HTTP): tracing.otlpEndpoint, or the release's own
Jaeger with tracing.jaeger (the umbrella chart runs it as <release>-jaeger), or nowhere. dict:
root, g.
*/}}
{{- define "order-system.otlpEndpoint" -}}
{{- .g.tracing.otlpEndpoint | default (ternary (printf "http://%s:4318" (include "order-system.fullname" (dict "root" .root "name" "jaeger"))) "" .g.tracing.jaeger) -}}
{{- end }}

{{/*
The conventional annotations that tell a Prometheus scraping pods by annotation where a pod's
metrics are, as YAML lines; none with metrics.scrapeAnnotations off. dict: g, port, path.
*/}}
{{- define "order-system.scrapeAnnotations" -}}
{{- if .g.metrics.scrapeAnnotations -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | toString | quote }}
prometheus.io/path: {{ .path | quote }}
{{- end -}}
{{- end }}

{{/* The Secret holding the services' client secrets at the provider. */}}
{{- define "order-system.authClientsSecret" -}}
{{- .g.auth.clientsSecret | default (include "order-system.fullname" (dict "root" .root "name" "auth-clients")) -}}
{{- end }}

{{/*
The hosts of the broker's nodes, a YAML list (use with fromYamlArray): global.amqp.host's,
several separated by commas for a cluster of your own; else, when the umbrella chart runs the
bundled broker, each of its nodes by its pod's name under the headless Service (a client
that knows every node moves to another when its own dies); else <release>-rabbitmq. A host
may name its port (host:port), global.amqp.port otherwise. dict: root, g.
*/}}
{{- define "order-system.amqpHosts" -}}
{{- $hosts := list -}}
{{- range splitList "," .g.amqp.host -}}
{{- if trim . -}}
{{- $hosts = append $hosts (trim .) -}}
{{- end -}}
{{- end -}}
{{- $bundled := (.root.Values.rabbitmq | default dict) -}}
{{- if and (not $hosts) $bundled.enabled $bundled.replicas -}}
{{- $hosts = include "order-system.rabbitmqNodeHosts" (dict "root" .root "replicas" $bundled.replicas "clusterDomain" $bundled.clusterDomain) | fromYamlArray -}}
{{- end -}}
{{- toYaml ($hosts | default (list (printf "%s-rabbitmq" .root.Release.Name))) -}}
{{- end }}

{{/*
The DNS names of the bundled broker's nodes, a YAML list: the pods of its StatefulSet under its
headless Service, <release>-rabbitmq-<n>.<release>-rabbitmq-headless.<namespace>.svc.<domain>.
They are also the nodes' names (rabbit@<host>, long names). dict: root, replicas, clusterDomain.
*/}}
{{- define "order-system.rabbitmqNodeHosts" -}}
{{- $fullname := include "order-system.fullname" (dict "root" .root "name" "rabbitmq") -}}
{{- range $i := until (int .replicas) }}
- {{ printf "%s-%d.%s-headless.%s.svc.%s" $fullname $i $fullname $.root.Release.Namespace ($.clusterDomain | default "cluster.local") }}
{{- end }}
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
  DATABASE_URL: {{ include "order-system.databaseURL" (dict "root" .root "g" .g "db" $db "password" .dbPassword) | quote }}
  {{- $urls := list }}
  {{- range $host := include "order-system.amqpHosts" . | fromYamlArray }}
  {{- $urls = append $urls (printf "%s://%s:%s@%s/%s" (ternary "amqps" "amqp" $.g.amqp.tls) (include "order-system.urlEscape" $.g.amqp.user) (include "order-system.urlEscape" $.amqpPassword) (ternary $host (printf "%s:%d" $host (int $.g.amqp.port)) (contains ":" $host)) (include "order-system.urlEscape" $.g.amqp.vhost)) }}
  {{- end }}
  AMQP_URL: {{ join "," $urls | quote }}
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

{{/* The bundled RabbitMQ's Secret: its user, password and Erlang cookie. dict: root, g, password, cookie. */}}
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
  erlang-cookie: {{ .cookie | quote }}
{{- end }}

{{/*
checksum/config of a service's pods: a hash of its values and the global ones, so that a
change of what its ConfigMap and Secret hold rolls the pods. The values that are written into
the pod template itself (image, pull secrets, service account, scheduling, pod labels and
annotations, the scrape annotations of global metrics, extraEnv) change the template anyway
and are left out, as are those of no pod at all (the ServiceMonitor of global metrics), so
that the hash of given values stays the same as the chart gains such settings. The globals appear in .values
(global) and in the values of the subchart's own dependency (order-system-lib.global) as well
as in g. dict: values, g.
*/}}
{{- define "order-system.configChecksum" -}}
{{- $values := omit .values "image" "imagePullSecrets" "serviceAccount" "automountServiceAccountToken"
  "podAnnotations" "podLabels" "nodeSelector" "tolerations" "affinity" "topologySpreadConstraints"
  "priorityClassName" "extraEnv" -}}
{{- if hasKey $values "global" -}}
{{- $_ := set $values "global" (omit ($values.global | default dict) "imagePullSecrets" "metrics") -}}
{{- end -}}
{{- range $k, $v := $values -}}
{{- if and (kindIs "map" $v) (hasKey $v "global") -}}
{{- $_ := set $values $k (set (omit $v "global") "global" (omit ($v.global | default dict) "imagePullSecrets" "metrics")) -}}
{{- end -}}
{{- end -}}
{{- printf "%v%v" $values (omit .g "imagePullSecrets" "metrics") | sha256sum -}}
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

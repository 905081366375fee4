{{/*
The nodes' configuration files, the ConfigMap's data (the pods carry its hash, so that a change
restarts them).

cluster.conf: the nodes find each other by their names (classic config peer discovery: every
node of the StatefulSet, by its pod's name under the headless Service). A node with an empty
volume takes a lock on the nodes it reaches, then joins one whose database is set up or,
finding none within its retries (10 s), starts the cluster; the lock makes nodes started together
(podManagementPolicy Parallel) do that one after the other, so that they form one cluster,
not several. A node with data rejoins its cluster and looks for nothing. On a partition the
nodes of a minority pause, so that a cut-off node never takes writes the majority does not see.

enabled_plugins: the plugins every node runs, whatever the image's own list enables (the
container's RABBITMQ_ENABLED_PLUGINS_FILE names this one, mounted read-only): the management
UI (15672) and rabbitmq_prometheus, the metrics a Prometheus scrapes on 15692.

start.sh: the container's command, run at every start before the image's own entrypoint.
cluster.conf is mounted by itself into /etc/rabbitmq/conf.d, beside the image's own files there
(the root filesystem is read-only).
*/}}
{{- define "order-system.rabbitmqConfig" -}}
cluster.conf: |
  cluster_formation.peer_discovery_backend = classic_config
  {{- range $i, $host := include "order-system.rabbitmqNodeHosts" (dict "root" . "replicas" .Values.replicas "clusterDomain" .Values.clusterDomain) | fromYamlArray }}
  cluster_formation.classic_config.nodes.{{ add1 $i }} = rabbit@{{ $host }}
  {{- end }}
  cluster_formation.discovery_retry_limit = 10
  cluster_formation.discovery_retry_interval = 1000
  cluster_formation.target_cluster_size_hint = {{ int .Values.replicas }}
  cluster_partition_handling = pause_minority
enabled_plugins: |
  [rabbitmq_management,rabbitmq_prometheus].
start.sh: |
  #!/bin/sh
  set -eu
  # The Erlang cookie, written afresh from the Secret with mode 0400 by the user the node runs
  # as: Erlang refuses a cookie file that others may read, and a volume that applies the pod's
  # fsGroup makes every file on it group-readable at each mount, so a cookie written once
  # would stop the node at its next start.
  cookie=/var/lib/rabbitmq/.erlang.cookie
  rm -f "$cookie"
  (umask 0377 && cat /etc/order-system/rabbitmq/erlang-cookie >"$cookie")
  exec docker-entrypoint.sh rabbitmq-server
{{- end }}

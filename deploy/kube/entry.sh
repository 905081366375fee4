#!/usr/bin/env bash
# The cluster's HTTP entry: Debian's nginx serving the Ingress objects the chart created, as
# tools/ingressentry renders them by the Ingress API's rules, proxying to the Services'
# cluster IPs (kube-proxy takes it from there). Stands in for an ingress controller, which
# cannot be built here: it reads the objects once per call, it does not watch them.
set -euo pipefail
. "$(dirname "$0")/cluster-env.sh"
dir=$STATE/entry
mkdir -p "$dir"
kubectl get ingress,service -A -o json | "$BIN/ingressentry" -listen "$NODE_IP:$ENTRY_PORT" -class nginx >"$dir/servers.conf"
cat >"$dir/nginx.conf" <<CONF
daemon off;
worker_processes 2;
pid $dir/nginx.pid;
error_log $STATE/logs/entry-error.log warn;
events { worker_connections 4096; }
http {
    access_log $STATE/logs/entry-access.log;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    proxy_http_version 1.1;
    proxy_set_header Host \$host;
    proxy_set_header X-Forwarded-For \$remote_addr;
    proxy_set_header Connection "";
    include $dir/servers.conf;
}
CONF
nginx -t -q -c "$dir/nginx.conf"
if pid_live "$STATE/entry.pid" >/dev/null; then
	nginx -s reload -c "$dir/nginx.conf"
else
	start_bg "$STATE/entry.pid" "$STATE/logs/entry.log" nginx -c "$dir/nginx.conf"
fi
answers() { [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: arch.homework' "http://$NODE_IP:$ENTRY_PORT/")" = 200 ]; }
wait_for 30 "the entry answering GET / for arch.homework" answers

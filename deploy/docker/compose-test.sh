#!/usr/bin/env bash
# make compose-test: the README's Docker Compose path, run for real on a machine without a
# registry. A Docker engine of its own (deploy/docker/engine.sh) builds the four images with
# deploy/Dockerfile (its golang and distroless bases are local stand-ins of the same names,
# its module downloads are served from this machine's module cache), `docker compose up
# --wait` starts docker-compose.yml (plus deploy/docker/compose.offline.yml: pull_policy
# never) with the tracing and monitoring profiles, the services exporting their traces to
# Jaeger; an order placed through the gateway must be one whole trace in Jaeger (order,
# billing, the broker and notification: tools/apicheck/cmd/tracecheck). Newman runs the
# collection through the compose gateway with the 2 s delay and without, one service is
# stopped and started again under the load generator (its invariant check must hold), then
# Prometheus must have every target up (the services, the broker's plugin, the PostgreSQL
# exporter), the rules loaded and every query of the dashboards returning data
# (tools/apicheck/cmd/dashcheck, the console in headless Chromium). Then the services are
# started again with sign-in on and the auth profile's development provider, and Newman runs
# the sign-in collection through the gateway; `docker compose down -v`, and the engine stops
# leaving nothing behind (checked). Timings are logged as measured.
#
# Needs root and Go; installs Debian's docker.io and jq, chromium, and newman, when they are
# missing. Docker Compose is built from the Go module proxy once into .cache/compose, Jaeger
# (its stand-in) into .cache/jaeger (git-ignored; make system builds the same).
# Host ports (127.0.0.1): gateway $GATEWAY_PORT (38000), PostgreSQL $POSTGRES_PORT (35432),
# RabbitMQ $RABBITMQ_PORT (35672) and $RABBITMQ_MANAGEMENT_PORT (45672), the OpenID provider
# $DEVIDP_PORT (38070), Jaeger's UI $JAEGER_UI_PORT (46686), Prometheus $PROMETHEUS_PORT
# (39090), so it runs next to `make run` and the machine's own PostgreSQL and RabbitMQ.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
# Every docker and compose call goes to the engine this script starts (engine_up exports its
# socket as DOCKER_HOST), never to one named by the environment or the default socket.
unset DOCKER_HOST DOCKER_CONTEXT

export GATEWAY_PORT=${GATEWAY_PORT:-38000} POSTGRES_PORT=${POSTGRES_PORT:-35432}
export RABBITMQ_PORT=${RABBITMQ_PORT:-35672} RABBITMQ_MANAGEMENT_PORT=${RABBITMQ_MANAGEMENT_PORT:-45672}
export DEVIDP_PORT=${DEVIDP_PORT:-38070} JAEGER_UI_PORT=${JAEGER_UI_PORT:-46686} PROMETHEUS_PORT=${PROMETHEUS_PORT:-39090}
export PUBLISH_ADDRESS=127.0.0.1
# The tracing profile's Jaeger, where the services export their spans.
export OTEL_EXPORTER_OTLP_ENDPOINT=http://jaeger:4318
NEWMAN=${NEWMAN:-newman}
gw=http://127.0.0.1:$GATEWAY_PORT

. scripts/lib.sh
. deploy/docker/engine.sh
[ "$(id -u)" = 0 ] || die "compose-test: needs root (it runs a Docker engine)"
engine_install
[ "$NEWMAN" != newman ] || bash scripts/install-tools.sh newman
bash scripts/install-tools.sh chromium # dashcheck opens the dashboard console in it
for tool in dockerd containerd iptables jq go chromium "$NEWMAN"; do
	command -v "$tool" >/dev/null || { echo "compose-test: $tool is missing" >&2; exit 1; }
done

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }
t_all=$(now)

# A fixed folder, so that make compose-down finds what a run killed before its clean-up left
# (deploy/docker/compose-down.sh); a run never starts over another's.
state=$COMPOSE_STATE
if [ -e "$state" ]; then
	if pid=$(pid_live "$state/run.pid"); then die "compose-test is running already (pid $pid)"; fi
	die "a compose-test that did not finish left $state: make compose-down first"
fi
mkdir -p "$state"
pid_record "$state/run.pid" $$
trap 'rm -rf "$state"' EXIT
# Debian's docker CLI; the classic builder (no BuildKit here); a client configuration of its own.
engine_cli "$state/bin"
export DOCKER_BUILDKIT=0 DOCKER_CONFIG=$state/docker-config

log "Docker Compose (built once into .cache/compose)"
t=$(now)
bash deploy/docker/build-compose.sh .cache/compose
compose_bin=$repo/.cache/compose/docker-compose
# Every call with the tracing and monitoring profiles, so that each up, build and down covers
# Jaeger, Prometheus and the exporter too.
compose() { "$compose_bin" -f docker-compose.yml -f deploy/docker/compose.offline.yml --profile tracing --profile monitoring "$@"; }
log "compose ready in $(since "$t") s"

log "stand-in base images, the load generator and the checks, the services' modules in the local cache"
t=$(now)
for n in golang distroless postgres rabbitmq nginx jaeger prometheus postgres-exporter; do
	bash deploy/standins/build-rootfs.sh "$n" "$state/standins"
done
(cd tools/loadgen && go build -o "$state/loadgen" .)
go build -o "$state" ./tools/apicheck/cmd/tracecheck ./tools/apicheck/cmd/dashcheck
for m in services/user services/billing services/order services/notification tools/devidp; do (cd "$m" && GOWORK=off go mod download); done
go build -o "$state/devidp" ./tools/devidp
log "prepared in $(since "$t") s"

# From here to the check after shutdown the engine changes the host's network.
. scripts/netlock.sh
t=$(now)
netlock_take "$state/lock.pid"
trap 'netlock_release "$state/lock.pid"; rm -rf "$state"' EXIT # until finish takes over
log "network lock $NET_LOCK taken after $(since "$t") s"
finish() {
	local rc=$?
	set +e
	# DOCKER_HOST is set only once engine_up has started our own engine.
	if [ -n "${DOCKER_HOST:-}" ] && [ $rc != 0 ]; then
		log "failed ($rc): last logs"
		compose ps -a 2>/dev/null
		compose logs --no-color --tail 30 2>/dev/null | tail -150
	fi
	[ -z "${DOCKER_HOST:-}" ] || compose --profile auth down -v --timeout 30 >/dev/null 2>&1
	compose_cleanup "$state" || rc=1
	[ $rc = 0 ] && log "passed in $(since "$t_all") s" || log "FAILED"
	exit $rc
}
trap finish EXIT

log "engine"
t=$(now)
engine_up "$state/engine"
log "engine up in $(since "$t") s"

# The module cache as a GOPROXY, on the engine's bridge where the build containers reach it.
bridge_ip=${ENGINE_BRIDGE_CIDR%/*}
modport=38081
start_bg "$state/modsrv.pid" "$state/modsrv.log" \
	"$state/standins/.debs/busybox-static/bin/busybox" httpd -f -p "$bridge_ip:$modport" -h "$(go env GOMODCACHE)/cache/download"

log "images: stand-ins, then the four services and the OpenID provider with deploy/Dockerfile (docker compose build)"
t=$(now)
s=deploy/standins/docker-import.sh
bash $s "$state/standins/golang" golang:1.26-bookworm -- "ENV GOPROXY=http://$bridge_ip:$modport"
bash $s "$state/standins/distroless" gcr.io/distroless/static-debian12:nonroot
bash $s "$state/standins/postgres" postgres:15-alpine
bash $s "$state/standins/rabbitmq" rabbitmq:3.13-management-alpine
bash $s "$state/standins/nginx" nginx:1.27-alpine
bash $s "$state/standins/jaeger" jaegertracing/jaeger:2.12.0
bash $s "$state/standins/prometheus" prom/prometheus:v2.55.1
bash $s "$state/standins/postgres-exporter" quay.io/prometheuscommunity/postgres-exporter:v0.18.1
log "stand-ins loaded in $(since "$t") s"
t=$(now)
# The classic builder runs compose's builds side by side, none reusing another's stages: one
# build alone first compiles the Dockerfile's build stage (all five programs), which the other
# four then take from the cache.
{ compose build user && compose --profile auth build; } >"$state/build.log" 2>&1 || { tail -40 "$state/build.log"; exit 1; }
docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^order-system-'
stop_pid "$state/modsrv.pid" 5
log "services built in $(since "$t") s"

log "docker compose up --wait"
t=$(now)
bash scripts/vendor-redoc.sh >/dev/null # the gateway serves it at /docs
compose up -d --wait --wait-timeout 300
log "up and healthy in $(since "$t") s"
compose ps --format '{{.Service}} {{.Status}} {{.Ports}}'
# Published ports listen on loopback only.
if docker ps --format '{{.Ports}}' | tr ',' '\n' | grep -E -- '->' | grep -vE '^ *127\.0\.0\.1:'; then
	echo "compose-test: a port is published beyond 127.0.0.1" >&2
	exit 1
fi

log "traces: an order placed through the gateway, read back from Jaeger"
t=$(now)
"$state/tracecheck" -base-url "$gw" -jaeger "http://127.0.0.1:$JAEGER_UI_PORT"
log "both traces whole in Jaeger after $(since "$t") s"

log "Newman through the compose gateway, with the 2 s delay and without"
t=$(now)
"$NEWMAN" run postman/order-system.postman_collection.json -e postman/local.postman_environment.json \
	--env-var "baseUrl=$gw" --delay-request 2000 --reporters cli
"$NEWMAN" run postman/order-system.postman_collection.json -e postman/local.postman_environment.json \
	--env-var "baseUrl=$gw" --reporters cli
log "Newman runs took $(since "$t") s"

# One service is stopped (SIGTERM, then its grace period) and started again while orders
# flow; the load generator's end-to-end check must still hold.
victim=${RESTART_SERVICE:-order}
log "restart of $victim under the load generator"
"$state/loadgen" -base-url "$gw" -clients 8 -users 40 -duration 40s -drain 60s \
	-pid-dir "$state/none" -out "$state/restart.json" >"$state/loadgen.log" 2>&1 &
loadgen=$!
sleep 12
cid=$(compose ps -q "$victim")
t=$(now)
compose stop "$victim"
stopped=$(since "$t")
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$cid")
t=$(now)
compose up -d --wait --no-deps "$victim"
back=$(since "$t")
rc=0
wait "$loadgen" || rc=$?
tail -5 "$state/loadgen.log"
jq -c '{orders, orders_per_second, statuses, errors, violations}' "$state/restart.json"
log "$victim stopped in $stopped s (exit code $exit_code), healthy again after $back s; load generator exit $rc"
[ "$exit_code" = 0 ] || { echo "compose-test: $victim did not exit cleanly on SIGTERM (exit code $exit_code)" >&2; exit 1; }
[ "$rc" = 0 ] || { echo "compose-test: the load generator's check failed" >&2; exit 1; }

# After the collections and the load: every panel has had traffic. The rules must be loaded
# (both groups), PostgreSQL reached by its exporter, the broker's per-queue series scraped.
log "monitoring: Prometheus's targets, rules and the dashboards"
t=$(now)
prometheus=http://127.0.0.1:$PROMETHEUS_PORT
groups=$(curl -fsS "$prometheus/api/v1/rules" | jq -r '[.data.groups[].name] | sort | join(",")')
[ "$groups" = order-system-alerts,order-system-records ] ||
	{ echo "compose-test: Prometheus has the rule groups '$groups', want order-system-alerts and order-system-records" >&2; exit 1; }
"$state/dashcheck" -prometheus "$prometheus" -expect 'pg_up == 1' \
	-expect 'rabbitmq_queue_messages{queue="notification.orders"}' deploy/grafana/order-system.json
log "monitoring checked in $(since "$t") s"

log "sign-in: the services again with AUTH=oidc and the auth profile's provider"
t=$(now)
secret() { od -An -N20 -tx1 /dev/urandom | tr -d ' \n'; }
AUTH=oidc USER_SERVICE_SECRET=$(secret) ORDER_SERVICE_SECRET=$(secret)
export AUTH USER_SERVICE_SECRET ORDER_SERVICE_SECRET
compose --profile auth up -d --wait --wait-timeout 300
# The gateway resolved the services' names when it started; the recreated containers may have
# other addresses.
compose --profile auth up -d --wait --no-deps --force-recreate gateway
log "up with sign-in on in $(since "$t") s"
# The provider's issuer is the name the services reach it by; from here its published port.
token() { "$state/devidp" token -issuer http://devidp:8070 -connect "127.0.0.1:$DEVIDP_PORT" "$@"; }
ann=$(token)
bob=$(token)
other=$(token -client other-app)
folders=()
for f in "Ann, signed in, runs the seed scenario" "Bob, another user, is refused on Ann's resources" \
	"Without a token every route is 401" "With a tampered token every route is 401" \
	"With a token for another audience every route is 401" "Nothing moved" \
	"The gateway limits each caller's writes" "The index and the API description need no token"; do
	folders+=(--folder "$f") # all but billing's internal API, which compose does not publish
done
t=$(now)
"$NEWMAN" run postman/order-system-auth.postman_collection.json -e postman/local-auth.postman_environment.json \
	--env-var "baseUrl=$gw" --env-var "tokenAnn=$ann" --env-var "tokenBob=$bob" --env-var "tokenOtherAudience=$other" \
	"${folders[@]}" --reporters cli
log "sign-in collection took $(since "$t") s"

log "docker compose down -v"
t=$(now)
compose --profile auth down -v --timeout 30
log "down in $(since "$t") s"

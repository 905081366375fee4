#!/usr/bin/env bash
# Starts order-system on this machine: prepares the database, builds the four services, starts
# them and the nginx gateway in the background (logs and pid files in .run/), waits until all
# are ready and prints the URL. scripts/stop.sh stops exactly what this started. The services
# are built and started by tools/localrun, which the system tests' harness uses as well; this
# script is the glue around it.
#
# REPLICAS=n starts n instances of each service: instance i listens on the service's port
# + 100 × (i − 1) and writes <service>.<i>.pid; the gateway balances over all of them.
#
# Each service runs with GOMAXPROCS=1 unless GOMAXPROCS is set: on a machine this size, shared
# with the database, the broker and the gateway, a second scheduler thread per service costs
# more CPU per order than it gains (docs/performance.md, "One scheduler thread per service").
#
# The gateway also serves the API reference at /docs (scripts/vendor-redoc.sh fetches its
# renderer from npm once).
#
# AUTH=oidc turns sign-in on: a development OpenID provider (tools/devidp) starts first on
# 127.0.0.1:8070, with a new random secret for each service client on every start, and the
# services verify the tokens it signs (`make -s token` prints one for a new user).
#
# METRICS=1 also starts a Prometheus (Debian's, installed on first use) on 127.0.0.1:9090 that
# scrapes every instance of the four services, PostgreSQL through its exporter (Debian's
# prometheus-postgres-exporter, installed on first use, started here on POSTGRES_EXPORTER_ADDR,
# 127.0.0.1:9187), and RabbitMQ's rabbitmq_prometheus plugin on RABBITMQ_METRICS
# (127.0.0.1:15692) when it answers there, and evaluates deploy/prometheus/rules.yml; its
# configuration is written to .run/prometheus.yml, its data to .run/prometheus. It serves the
# dashboard deploy/prometheus/consoles/order-system.html at /consoles/order-system.html, with
# the console libraries of Debian's package (CONSOLE_LIBRARIES).
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_DIR=${RUN_DIR:-.run}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432}
export PGOPTIONS="-c client_min_messages=warning"
REPLICAS=${REPLICAS:-1}
AUTH=${AUTH:-off}
[[ $AUTH =~ ^(off|oidc)$ ]] || { echo "AUTH must be off or oidc, got '$AUTH'" >&2; exit 1; }
IDP_ADDR=127.0.0.1:8070
METRICS=${METRICS:-0}
[[ $METRICS =~ ^[01]$ ]] || { echo "METRICS must be 0 or 1, got '$METRICS'" >&2; exit 1; }
PROMETHEUS_ADDR=127.0.0.1:9090
RABBITMQ_METRICS=${RABBITMQ_METRICS:-127.0.0.1:15692}
POSTGRES_EXPORTER_ADDR=${POSTGRES_EXPORTER_ADDR:-127.0.0.1:9187}
CONSOLE_LIBRARIES=${CONSOLE_LIBRARIES:-/usr/share/doc/prometheus/examples/console_libraries}
[[ $REPLICAS =~ ^[1-9]$ ]] || { echo "REPLICAS must be 1 to 9, got '$REPLICAS'" >&2; exit 1; }
# The services connect as their own roles (created by setup.sql) to the server PG_ADMIN_URL names.
PG_HOSTPORT=${PG_ADMIN_URL#*://}
PG_HOSTPORT=${PG_HOSTPORT##*@}
PG_HOSTPORT=${PG_HOSTPORT%%[/?]*}

mkdir -p "$RUN_DIR/logs" "$RUN_DIR/tmp"
bash scripts/install-tools.sh nginx
[ "$METRICS" = 0 ] || bash scripts/install-tools.sh promtool prometheus-postgres-exporter # promtool: and the server with it

. scripts/lib.sh
# The services, their instances and addresses, in start order, as tools/localrun knows them:
# it starts them below, as it does for the system tests.
mkdir -p bin
go build -o bin/localrun ./tools/localrun/cmd/localrun
SERVICES=()
declare -A ADDRS=() # service → its instances' addresses, each followed by a space
while read -r svc _ addr; do
	[ -n "${ADDRS[$svc]:-}" ] || SERVICES+=("$svc")
	ADDRS[$svc]+="$addr "
done < <(bin/localrun list -replicas "$REPLICAS")
[ ${#SERVICES[@]} -eq 4 ] || die "localrun list named ${#SERVICES[@]} services, want 4"
running() { pid_live "$RUN_DIR/$1.pid" >/dev/null; }
for name in "${SERVICES[@]}" gateway devidp prometheus postgres-exporter; do
	if running "$name" || running "$name.2"; then
		echo "order-system is already running ($name); run make stop first" >&2
		exit 1
	fi
done

echo "preparing database order_system"
psql "$PG_ADMIN_URL/postgres" -v ON_ERROR_STOP=1 -qtAc "SELECT 1 FROM pg_database WHERE datname = 'order_system'" | grep -q 1 ||
	psql "$PG_ADMIN_URL/postgres" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE order_system"
psql "$PG_ADMIN_URL/order_system" -v ON_ERROR_STOP=1 -q -f deploy/postgres/setup.sql

echo "building services"
bin/localrun build -o bin
[ "$AUTH" = off ] || go build -o bin/devidp ./tools/devidp
# The API reference at /docs is rendered by Redoc, vendored from npm on the first run; without
# it the rest runs as usual.
redoc=$(bash scripts/vendor-redoc.sh) || { redoc=; echo "the API reference at /docs is not served: Redoc could not be vendored (above)" >&2; }

# PostgreSQL on this host is reached over its unix socket when a service role may log in
# there: a statement costs the server less CPU over the socket than over TCP.
# PG_SOCKET_DIR= (empty) keeps TCP. Otherwise they connect to the server PG_ADMIN_URL names.
PG_SOCKET_DIR=${PG_SOCKET_DIR-/var/run/postgresql}
db_url() { echo "postgres://$1_service:$1_service@$PG_HOSTPORT/order_system?sslmode=disable"; }
if [[ $PG_HOSTPORT =~ ^(127\.0\.0\.1|localhost)(:5432)?$ ]] && [ -n "$PG_SOCKET_DIR" ] && [ -S "$PG_SOCKET_DIR/.s.PGSQL.5432" ] &&
	psql "postgres://order_service:order_service@/order_system?host=$PG_SOCKET_DIR" -qtAc "SELECT 1" >/dev/null 2>&1; then
	db_url() { echo "postgres://$1_service:$1_service@/order_system?host=$PG_SOCKET_DIR&sslmode=disable"; }
	echo "services reach PostgreSQL over $PG_SOCKET_DIR"
fi

# From here on, a start that fails half-way stops what it started, so the next make run
# starts clean.
fail() {
	echo "$1" >&2
	bash scripts/stop.sh >/dev/null 2>&1 || true
	exit 1
}
trap 'fail "make run failed"' ERR
ready() { curl -fs -o /dev/null --max-time 2 "$1"; }
# await <name> <url> <seconds> <failure>: polls url until it answers, as long as the process
# in $RUN_DIR/<name>.pid lives and the seconds last; otherwise shows the end of its log and
# fails with the given words.
await() {
	local name=$1 url=$2 deadline=$((SECONDS + $3)) failure=$4
	until ready "$url"; do
		if ! running "$name" || [ $SECONDS -ge $deadline ]; then
			tail -n 20 "$RUN_DIR/logs/$name.log" >&2
			fail "$failure (its last log lines are above)"
		fi
		sleep 0.2
	done
}

# Sign-in: the provider first, with a secret per service client that only this run knows
# (in the environment of the provider and of that service, never on a command line or disk).
declare -A SECRETS=()
if [ "$AUTH" = oidc ]; then
	secret() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
	SECRETS=([user]=$(secret) [order]=$(secret))
	DEVIDP_SERVICE_CLIENTS="user-service:${SECRETS[user]},order-service:${SECRETS[order]}" \
		start_bg "$RUN_DIR/devidp.pid" "$RUN_DIR/logs/devidp.log" bin/devidp serve -addr "$IDP_ADDR" -issuer "http://$IDP_ADDR"
	await devidp "http://$IDP_ADDR/.well-known/openid-configuration" 30 "the development OpenID provider did not start"
	echo "sign-in is on: tokens from http://$IDP_ADDR (make -s token)"
fi

# Each service's instances, in start order; localrun waits until they are ready (or shows
# why not) before the next service starts.
for svc in "${SERVICES[@]}"; do
	(
		if [ "$AUTH" = oidc ]; then
			export AUTH_ISSUER="http://$IDP_ADDR"
			if [ -n "${SECRETS[$svc]:-}" ]; then export AUTH_CLIENT_ID="$svc-service" AUTH_CLIENT_SECRET="${SECRETS[$svc]}"; fi
		fi
		export AUTH GOMAXPROCS="${GOMAXPROCS:-1}"
		bin/localrun start -service "$svc" -replicas "$REPLICAS" -database "$(db_url "$svc")" -bin bin -run-dir "$RUN_DIR"
	) || fail "$svc did not start (its last log lines are above)"
done
# The gateway's configuration, with every instance in its service's upstream.
mkdir -p "$RUN_DIR/gateway"
cp deploy/nginx/local.conf deploy/nginx/routes.conf deploy/nginx/limits.conf api/openapi.yaml "$RUN_DIR/gateway/"
rm -rf "$RUN_DIR/gateway/docs" "$RUN_DIR/gateway/docs.html"
if [ -n "$redoc" ]; then
	mkdir "$RUN_DIR/gateway/docs"
	cp deploy/nginx/docs.html "$RUN_DIR/gateway/"
	cp "$redoc/redoc.standalone.js" "$RUN_DIR/gateway/docs/"
fi
for svc in "${SERVICES[@]}"; do
	first=${ADDRS[$svc]%% *} servers=""
	for addr in ${ADDRS[$svc]}; do servers+="server $addr; "; done
	sed -i "s/server ${first//./\\.}; /$servers/" "$RUN_DIR/gateway/local.conf"
done
nginx -p "$PWD/$RUN_DIR/" -c "$PWD/$RUN_DIR/gateway/local.conf"
wait_for 30 "the gateway" ready "http://127.0.0.1:8000/" ||
	{ cat "$RUN_DIR/logs/gateway.error.log" >&2; fail "gateway did not start"; }
# nginx wrote its master's bare pid; the start time beside it makes the file say which
# process it is (make stop signals only that one).
pid_record "$RUN_DIR/gateway.pid" "$(cat "$RUN_DIR/gateway.pid")"

# Prometheus, once the services answer, so that its first scrapes find them up. The broker's
# plugin is scraped only where it answers: the machine's RabbitMQ may not have it enabled,
# and a target that is never there would only fire RabbitMQDown.
if [ "$METRICS" = 1 ]; then
	# PostgreSQL's exporter, first: it reads the statistics views of the server PG_ADMIN_URL
	# names, as that superuser, connected to order_system. The URL goes in its environment,
	# never on a command line. Whatever else answers on its address would be scraped in its
	# place, hence the check.
	if ready "http://$POSTGRES_EXPORTER_ADDR/"; then
		fail "something already answers on $POSTGRES_EXPORTER_ADDR: POSTGRES_EXPORTER_ADDR=127.0.0.1:<port> moves PostgreSQL's exporter"
	fi
	DATA_SOURCE_NAME="$PG_ADMIN_URL/order_system?sslmode=disable" start_bg "$RUN_DIR/postgres-exporter.pid" \
		"$RUN_DIR/logs/postgres-exporter.log" prometheus-postgres-exporter --web.listen-address="$POSTGRES_EXPORTER_ADDR"
	await postgres-exporter "http://$POSTGRES_EXPORTER_ADDR/" 30 "PostgreSQL's exporter did not start"

	broker=0
	ready "http://$RABBITMQ_METRICS/metrics/per-object" && broker=1
	{
		echo "# Generated by scripts/run.sh for this run."
		echo "global: {scrape_interval: 5s, evaluation_interval: 5s}"
		echo "rule_files: ['$PWD/deploy/prometheus/rules.yml']"
		echo "scrape_configs:"
		for svc in "${SERVICES[@]}"; do
			targets=()
			for addr in ${ADDRS[$svc]}; do targets+=("'$addr'"); done
			echo "  - {job_name: $svc, static_configs: [{targets: [$(IFS=,; echo "${targets[*]}")]}]}"
		done
		echo "  - {job_name: postgres, static_configs: [{targets: ['$POSTGRES_EXPORTER_ADDR']}]}"
		if [ "$broker" = 1 ]; then
			echo "  - {job_name: rabbitmq, metrics_path: /metrics/per-object, static_configs: [{targets: ['$RABBITMQ_METRICS']}]}"
		fi
	} >"$RUN_DIR/prometheus.yml"
	[ "$broker" = 1 ] ||
		echo "RabbitMQ's rabbitmq_prometheus plugin does not answer on $RABBITMQ_METRICS: the broker's series (dead-letter queues) are not scraped"
	[ -f "$CONSOLE_LIBRARIES/prom.lib" ] ||
		echo "no console libraries in $CONSOLE_LIBRARIES (prom.lib): the dashboard at /consoles/order-system.html will not render" >&2
	start_bg "$RUN_DIR/prometheus.pid" "$RUN_DIR/logs/prometheus.log" \
		prometheus --config.file="$RUN_DIR/prometheus.yml" --storage.tsdb.path="$RUN_DIR/prometheus" \
		--storage.tsdb.retention.time=2d --web.listen-address="$PROMETHEUS_ADDR" \
		--web.console.templates="$PWD/deploy/prometheus/consoles" --web.console.libraries="$CONSOLE_LIBRARIES"
	await prometheus "http://$PROMETHEUS_ADDR/-/ready" 30 "Prometheus did not start"
	echo "Prometheus is scraping the services and PostgreSQL at http://$PROMETHEUS_ADDR (alerts: http://$PROMETHEUS_ADDR/alerts," \
		"dashboard: http://$PROMETHEUS_ADDR/consoles/order-system.html)"
fi
trap - ERR
[ "$REPLICAS" -eq 1 ] || echo "$REPLICAS instances of each service behind the gateway"
echo "order-system is running at http://localhost:8000 (logs in $RUN_DIR/logs, stop with make stop)"

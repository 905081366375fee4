#!/usr/bin/env bash
# Starts order-system on this machine: prepares the database, builds the four services, starts
# them and the nginx gateway in the background (logs and pid files in .run/), waits until all
# are ready and prints the URL. scripts/stop.sh stops exactly what this started.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_DIR=${RUN_DIR:-.run}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432}
export PGOPTIONS="-c client_min_messages=warning"
SERVICES=(billing notification user order) # billing and notification first: the others call or feed them
declare -A PORTS=([user]=8081 [billing]=8082 [order]=8083 [notification]=8084)

mkdir -p "$RUN_DIR/logs" "$RUN_DIR/tmp"

running() { [ -f "$RUN_DIR/$1.pid" ] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }
for name in "${SERVICES[@]}" gateway; do
	if running "$name"; then
		echo "order-system is already running ($name, pid $(cat "$RUN_DIR/$name.pid")); run make stop first" >&2
		exit 1
	fi
done

echo "preparing database order_system"
psql "$PG_ADMIN_URL/postgres" -v ON_ERROR_STOP=1 -qtAc "SELECT 1 FROM pg_database WHERE datname = 'order_system'" | grep -q 1 ||
	psql "$PG_ADMIN_URL/postgres" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE order_system"
psql "$PG_ADMIN_URL/order_system" -v ON_ERROR_STOP=1 -q -f deploy/postgres/setup.sql

echo "building services"
mkdir -p bin
for svc in "${SERVICES[@]}"; do
	go build -o "bin/$svc" "./services/$svc/cmd/$svc"
done

# From here on, a start that fails half-way stops what it started, so the next make run
# starts clean.
fail() {
	echo "$1" >&2
	bash scripts/stop.sh >/dev/null 2>&1 || true
	exit 1
}
trap 'fail "make run failed"' ERR
for svc in "${SERVICES[@]}"; do
	HTTP_ADDR="127.0.0.1:${PORTS[$svc]}" nohup "bin/$svc" >>"$RUN_DIR/logs/$svc.log" 2>&1 &
	echo $! >"$RUN_DIR/$svc.pid"
done
nginx -p "$PWD/$RUN_DIR/" -c "$PWD/deploy/nginx/local.conf"

ready() { curl -fs -o /dev/null --max-time 2 "$1"; }
deadline=$((SECONDS + 60))
for svc in "${SERVICES[@]}"; do
	until ready "http://127.0.0.1:${PORTS[$svc]}/readyz"; do
		if ! running "$svc" || [ $SECONDS -ge $deadline ]; then
			tail -n 20 "$RUN_DIR/logs/$svc.log" >&2
			fail "$svc did not become ready (its last log lines are above)"
		fi
		sleep 0.2
	done
done
until ready "http://127.0.0.1:8000/"; do
	[ $SECONDS -lt $deadline ] || { cat "$RUN_DIR/logs/gateway.error.log" >&2; fail "gateway did not start"; }
	sleep 0.2
done
trap - ERR
echo "order-system is running at http://localhost:8000 (logs in $RUN_DIR/logs, stop with make stop)"

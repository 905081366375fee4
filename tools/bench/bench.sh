#!/usr/bin/env bash
# make bench: a pgbench reference line and three load generator runs, in the same run, so that
# the figures compare across machines:
#   mix        closed loop, the default mix (a fifth of the new orders keyed)
#   all keyed  closed loop, every new order with an Idempotency-Key
#   open loop  every new order keyed, started on a fixed schedule at RATE requests/s (by
#              default half of what the all-keyed run reached)
# Starts the system (make run, with REPLICAS instances of each service) unless BASE_URL is
# given or something already answers on :8000, and stops what it started. CLIENTS (32) and
# DURATION (30s) set the load. Fails only if an invariant breaks in any run.
set -euo pipefail
cd "$(dirname "$0")/../.."
CLIENTS=${CLIENTS:-32}
DURATION=${DURATION:-30s}
RATE=${RATE:-}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432}

started=
if [ -z "${BASE_URL:-}" ]; then
	BASE_URL=http://localhost:8000
	if ! curl -fs -o /dev/null --max-time 2 "$BASE_URL/"; then
		REPLICAS=${REPLICAS:-1} bash scripts/run.sh
		started=1
	elif [ -n "${REPLICAS:-}" ]; then
		echo "REPLICAS ignored: the system already runs on :8000; make stop first" >&2
	fi
fi
db="bench_$$"
cleanup() {
	psql "$PG_ADMIN_URL/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
	if [ -n "$started" ]; then bash scripts/stop.sh; fi
}
trap cleanup EXIT

echo "== reference: pgbench, debit-shaped transaction, $CLIENTS clients, 10 s, TCP"
psql "$PG_ADMIN_URL/postgres" -qc "CREATE DATABASE $db"
psql "$PG_ADMIN_URL/$db" -q <<'SQL'
CREATE TABLE accounts (user_id int PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));
CREATE TABLE entries (id bigserial PRIMARY KEY, user_id int NOT NULL, amount bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO accounts SELECT g, 1000000000 FROM generate_series(1, 1000) g;
SQL
tps=$(pgbench -n -f tools/bench/debit.sql -c "$CLIENTS" -j 2 -T 10 "$PG_ADMIN_URL/$db" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
echo "pgbench debit tps: $tps"

go build -o bin/loadgen ./tools/loadgen
rm -f bench.json bench-keyed.json bench-open.json
status=0
load() { bin/loadgen -base-url "$BASE_URL" -duration "$DURATION" "$@" || status=$?; }

echo "== mix: $CLIENTS clients, $DURATION, default mix"
load -clients "$CLIENTS" -out bench.json
echo "== all keyed: $CLIENTS clients, $DURATION, every new order keyed"
load -clients "$CLIENTS" -keyed 1 -out bench-keyed.json
if [ -z "$RATE" ]; then
	keyed=$(sed -n 's/.*"orders_per_second": \([0-9.]*\).*/\1/p' bench-keyed.json | head -1)
	RATE=$(awk -v o="${keyed:-0}" 'BEGIN { r = int(o / 2 / 10 + 0.5) * 10; print (r < 10 ? 10 : r) }')
fi
echo "== open loop: $RATE requests/s, $DURATION, every new order keyed"
load -rate "$RATE" -keyed 1 -out bench-open.json

echo
echo "== order-system, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC')"
bin/loadgen table -pgbench-tps "${tps:-0}" mix=bench.json "all keyed=bench-keyed.json" "open loop=bench-open.json"
exit $status

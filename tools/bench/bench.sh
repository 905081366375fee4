#!/usr/bin/env bash
# make bench: a pgbench reference line and the load generator, in the same run, so that the
# figures compare across machines. Starts the system (make run) unless BASE_URL is given, and
# stops what it started. CLIENTS (32) and DURATION (30s) set the load.
set -euo pipefail
cd "$(dirname "$0")/../.."
CLIENTS=${CLIENTS:-32}
DURATION=${DURATION:-30s}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432}

started=
if [ -z "${BASE_URL:-}" ]; then
	BASE_URL=http://localhost:8000
	if ! curl -fs -o /dev/null --max-time 2 "$BASE_URL/"; then
		bash scripts/run.sh
		started=1
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

echo "== order-system through the gateway: $CLIENTS clients, $DURATION"
go build -o bin/loadgen ./tools/loadgen
status=0
bin/loadgen -base-url "$BASE_URL" -clients "$CLIENTS" -duration "$DURATION" -out bench.json || status=$?
orders=$(sed -n 's/.*"orders_per_second": \([0-9.]*\).*/\1/p' bench.json | head -1)
completed=$(sed -n 's/.*"completed_per_second": \([0-9.]*\).*/\1/p' bench.json | head -1)
if [ -n "$tps" ] && [ -n "$orders" ]; then
	awk -v o="$orders" -v c="$completed" -v t="$tps" 'BEGIN { printf "orders/s ÷ pgbench debit tps: %.3f (completed %.3f)\n", o / t, c / t }'
fi
exit $status

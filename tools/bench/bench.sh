#!/usr/bin/env bash
# make bench: a pgbench reference line and three load generator runs, in the same run, so that
# the figures compare across machines:
#   mix        closed loop, the default mix (a fifth of the new orders keyed)
#   all keyed  closed loop, every new order with an Idempotency-Key
#   open loop  every new order keyed, started on a fixed schedule at RATE requests/s (by
#              default half of what the all-keyed run reached)
# Starts the system (make run, with REPLICAS instances of each service) unless BASE_URL is
# given or something already answers on :8000, and stops what it started. CLIENTS (32) and
# DURATION (30s) set the load; RUNS ("mix keyed open") picks the runs. Writes each run's JSON
# and bench.html, the table and each run's charts (loadgen report). Fails only if an
# invariant breaks in any run, or the report cannot be written.
#
# PROFILE=1 starts the services with their profiler (PPROF=true) and takes the CPU profiles of
# order and billing (their first instances) over the open-loop run: bench-open-<service>.pprof
# for go tool pprof, and bench-open-<service>-flame.svg, the same drawn as a flame graph.
#
# TRACING=1 starts the services with every span sampled and exported over OTLP to
# tools/otlpsink (which decodes and counts them, and keeps nothing), so that the figures
# include the whole cost of tracing; compare with a run without it.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
CLIENTS=${CLIENTS:-32}
DURATION=${DURATION:-30s}
RATE=${RATE:-}
RUNS=${RUNS:-mix keyed open}
TRACING=${TRACING:-}
PROFILE=${PROFILE:-}
OTLP_SINK_ADDR=${OTLP_SINK_ADDR:-127.0.0.1:4318}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432}

# needs_own_services <setting>: PROFILE and TRACING change how the services start, so they
# need the services this benchmark starts.
needs_own_services() {
	if [ -n "${BASE_URL:-}" ] || curl -fs -o /dev/null --max-time 2 http://localhost:8000/; then
		echo "$1 needs the services started by this benchmark: make stop first, and no BASE_URL" >&2
		exit 1
	fi
}
if [ -n "$PROFILE" ]; then
	needs_own_services PROFILE
	export PPROF=true
fi

sink=
if [ -n "$TRACING" ]; then
	needs_own_services TRACING
	go build -o bin/otlpsink ./tools/otlpsink
	bin/otlpsink -addr "$OTLP_SINK_ADDR" &
	sink=$!
	# Spans must reach this sink, not whatever else may listen on the address: it has to be
	# up, and still running once up (it exits at once when the address is taken).
	wait_for 5 "tools/otlpsink on $OTLP_SINK_ADDR" curl -s -o /dev/null --max-time 1 "http://$OTLP_SINK_ADDR/" || true
	sleep 0.2
	if ! kill -0 "$sink" 2>/dev/null; then
		echo "tools/otlpsink could not listen on $OTLP_SINK_ADDR (OTLP_SINK_ADDR picks another)" >&2
		exit 1
	fi
	export OTEL_EXPORTER_OTLP_ENDPOINT="http://$OTLP_SINK_ADDR" OTEL_TRACES_SAMPLER=always_on
	echo "tracing: every span exported to $OTEL_EXPORTER_OTLP_ENDPOINT (tools/otlpsink)"
fi

started=
db="bench_$$"
cleanup() {
	psql "$PG_ADMIN_URL/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
	if [ -n "$started" ]; then bash scripts/stop.sh; fi
	if [ -n "$sink" ]; then
		kill "$sink" 2>/dev/null || true # it prints how many spans it received
		wait "$sink" || true
	fi
}
trap cleanup EXIT
if [ -z "${BASE_URL:-}" ]; then
	BASE_URL=http://localhost:8000
	if ! curl -fs -o /dev/null --max-time 2 "$BASE_URL/"; then
		REPLICAS=${REPLICAS:-1} bash scripts/run.sh
		started=1
	elif [ -n "${REPLICAS:-}" ]; then
		echo "REPLICAS ignored: the system already runs on :8000; make stop first" >&2
	fi
fi

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
rm -f bench.json bench-keyed.json bench-open.json bench-open-*.pprof bench-open-*-flame.svg bench.html
status=0
load() { bin/loadgen -base-url "$BASE_URL" -duration "$DURATION" "$@" || status=$?; }

reports=()
for run in $RUNS; do
	case $run in
	mix)
		echo "== mix: $CLIENTS clients, $DURATION, default mix"
		load -clients "$CLIENTS" -out bench.json
		reports+=(mix=bench.json)
		;;
	keyed)
		echo "== all keyed: $CLIENTS clients, $DURATION, every new order keyed"
		load -clients "$CLIENTS" -keyed 1 -out bench-keyed.json
		reports+=("all keyed=bench-keyed.json")
		;;
	open)
		if [ -z "$RATE" ] && [ -f bench-keyed.json ]; then
			keyed=$(sed -n 's/.*"orders_per_second": \([0-9.]*\).*/\1/p' bench-keyed.json | head -1)
			RATE=$(awk -v o="${keyed:-0}" 'BEGIN { r = int(o / 2 / 10 + 0.5) * 10; print (r < 10 ? 10 : r) }')
		fi
		[ -n "$RATE" ] || { echo "RUNS=open without keyed before it needs RATE" >&2; exit 1; }
		echo "== open loop: $RATE requests/s, $DURATION, every new order keyed"
		profiles=()
		if [ -n "$PROFILE" ]; then
			while read -r svc instance addr; do
				case $svc in order | billing) [ "$instance" != "$svc" ] || profiles+=(-cpu-profile "$svc=http://$addr") ;; esac
			done < <(bin/localrun list)
		fi
		load -rate "$RATE" -keyed 1 -out bench-open.json "${profiles[@]}"
		reports+=("open loop=bench-open.json")
		;;
	*)
		echo "RUNS: unknown run '$run' (mix, keyed, open)" >&2
		exit 1
		;;
	esac
done

echo
echo "== order-system, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC')${TRACING:+, tracing: every span exported over OTLP}"
bin/loadgen table -pgbench-tps "${tps:-0}" "${reports[@]}"
# The same table and each run's charts, in one page that needs nothing else.
bin/loadgen report -out bench.html -pgbench-tps "${tps:-0}" "${reports[@]}"
echo "the table and each run's charts: bench.html"
exit $status

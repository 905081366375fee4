#!/usr/bin/env bash
# Stops what scripts/run.sh started, by the pid files it wrote: SIGTERM first so that each
# service drains its requests, SIGKILL for what is still alive after 20 s.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
RUN_DIR=${RUN_DIR:-.run}

pids=()
for f in "$RUN_DIR"/*.pid; do
	[ -f "$f" ] || continue
	pid=$(cat "$f")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" && pids+=("$pid")
	fi
	rm -f "$f"
done
for _ in $(seq 100); do
	alive=()
	for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
	[ ${#alive[@]} -eq 0 ] && break
	sleep 0.2
done
for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"; done
echo "order-system stopped"

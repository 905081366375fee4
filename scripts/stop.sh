#!/usr/bin/env bash
# Stops what scripts/run.sh started, by the pid files it wrote: SIGTERM first so that each
# service drains its requests, SIGKILL for what is still alive after 20 s. A process is
# signalled only when it is the one its pid file names (pid and start time): a pid file left
# by a crash or a reboot is removed, and whatever now has that pid is left alone.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
RUN_DIR=${RUN_DIR:-.run}
. scripts/lib.sh

files=() # the pid files of the processes signalled, checked again before each signal
for f in "$RUN_DIR"/*.pid; do
	[ -f "$f" ] || continue
	if pid=$(pid_live "$f"); then
		kill -TERM "$pid" && files+=("$f") && continue
	fi
	rm -f "$f"
done
for _ in $(seq 100); do
	alive=0
	for f in "${files[@]}"; do pid_live "$f" >/dev/null && alive=1; done
	[ $alive = 0 ] && break
	sleep 0.2
done
for f in "${files[@]}"; do
	if pid=$(pid_live "$f"); then kill -KILL "$pid"; fi
	rm -f "$f"
done
echo "order-system stopped"

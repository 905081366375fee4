#!/usr/bin/env bash
# A make compose-test killed half-way, then cleaned up by make compose-down (CI runs this
# before make compose-test). compose-test starts in a process group of its own and is killed
# with SIGKILL, the whole group at once, once its Docker engine runs a container: what it
# started in sessions of their own (containerd, dockerd and their containers, the network
# lock's holder, the module server) lives on, as after a crash of the script or an OOM kill.
# make compose-down must then stop all of it and find the host as the engine found it
# (engine_check: the snapshot engine_up took), and a second compose-down must have nothing
# left to do. Needs what compose-test needs.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
. deploy/docker/engine.sh
[ ! -e "$COMPOSE_STATE" ] || die "$COMPOSE_STATE exists: make compose-down first"
mkdir -p .run
sock=unix://$COMPOSE_STATE/engine/docker.sock
running=
engine_runs_a_container() {
	running=$(docker -H "$sock" ps --format '{{.Image}} {{.Command}}' 2>/dev/null | tr '\n' ' ')
	[ -n "$running" ]
}

log "compose-test, to be killed once its engine runs a container (its output: .run/compose-killed.log)"
setsid bash deploy/docker/compose-test.sh >.run/compose-killed.log 2>&1 &
leader=$!
if ! wait_for 1800 "a container on compose-test's engine" engine_runs_a_container; then
	kill -KILL -- "-$leader" 2>/dev/null || true
	tail -30 .run/compose-killed.log >&2
	bash deploy/docker/compose-down.sh || true
	exit 1
fi
log "running on its engine: $running"
kill -KILL -- "-$leader"
wait "$leader" 2>/dev/null || true
log "killed; left running: $(pgrep -fc -- "$COMPOSE_STATE/") processes naming its state folder"
pid_live "$COMPOSE_STATE/lock.pid" >/dev/null || die "the network lock's holder did not outlive the kill: nothing to test"

if refusal=$(bash deploy/docker/compose-test.sh 2>&1); then die "compose-test started over the killed run's state"; fi
grep -q 'make compose-down first' <<<"$refusal" || die "compose-test failed, but not for the killed run's state: $refusal"
log "a new compose-test refuses to start over it: $(tail -1 <<<"$refusal")"

bash deploy/docker/compose-down.sh
[ ! -e "$COMPOSE_STATE" ] || die "compose-down left $COMPOSE_STATE"
[ -z "$(pgrep -f -- "$COMPOSE_STATE/" || true)" ] || die "left running: $(pgrep -af -- "$COMPOSE_STATE/")"
bash deploy/docker/compose-down.sh | grep -q 'nothing to clean up' || die "a second compose-down found something"
log "passed: the killed run's engine, containers and lock are gone and the host is as before"

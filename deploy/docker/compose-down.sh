#!/usr/bin/env bash
# make compose-down: cleans up after a make compose-test that did not clean up itself (killed
# with SIGKILL, out of memory, the machine lost power): stops what it had started by the pid
# files in its state folder (.run/compose), its Docker engine's containers through the
# engine's own socket, then the engine, removes what the engine left on the host and checks
# that nothing is left (deploy/docker/engine.sh), then releases the network lock. Refuses
# while that compose-test still runs. Nothing to do when there is no state.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
. scripts/netlock.sh
. deploy/docker/engine.sh
state=$COMPOSE_STATE
[ -d "$state" ] || { echo "no compose-test state in $state: nothing to clean up"; exit 0; }
if pid=$(pid_live "$state/run.pid"); then die "compose-test is still running (pid $pid): stop it first"; fi
[ "$(id -u)" = 0 ] || die "compose-down: needs root (it stops a Docker engine and changes iptables)"
# The clean-up and its check run under the network lock: the holder the killed run started,
# or, when that is gone, the lock taken here, so that nobody else's bridge or chain appears
# meanwhile and is taken for the engine's.
if [ -z "${COMPOSE_DOWN_LOCKED:-}" ] && [ -d "$state/engine" ] && ! pid_live "$state/lock.pid" >/dev/null; then
	log "waiting for $NET_LOCK"
	rc=0
	COMPOSE_DOWN_LOCKED=1 flock -w "${NET_LOCK_WAIT:-1800}" -E 75 "$NET_LOCK" bash "$0" "$@" || rc=$?
	[ $rc != 75 ] || echo "could not take $NET_LOCK; it is held by: $(netlock_holders)" >&2
	exit $rc
fi
log "cleaning up after the compose-test that left $state"
# Each step goes on past what is already gone (as compose-test's own exit does); the check
# at the end of compose_cleanup decides.
set +e
compose_cleanup "$state" || die "compose-down: something is left (above); run it again once it is dealt with"
log "compose-down: done"

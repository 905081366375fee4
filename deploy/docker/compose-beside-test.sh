#!/usr/bin/env bash
# make compose-test beside another Docker engine, as on a machine whose own engine runs (CI
# runs this as its compose-test). The other engine is started as a machine's would be
# (deploy/docker/engine.sh engine_up ... system: the default socket, docker0, its own
# iptables rules) and runs a container with a published port before compose-test starts;
# compose-test runs with DOCKER_HOST naming the default socket, which it must ignore. Then
# the other engine must be as it was: the same container (id, process, start time) still
# running and answering on its port, the same containers, images and networks, docker0 and
# every iptables rule of that engine unchanged. Then it is stopped and the host must be as
# before it started (engine_check).
#
#   deploy/docker/compose-beside-test.sh         the test
#   deploy/docker/compose-beside-test.sh down    stops the other engine a killed run left
#                                                (after make compose-down, when the run was
#                                                killed during compose-test)
#
# Needs root and what compose-test needs. Its state: .run/other-engine (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
. scripts/netlock.sh
. deploy/docker/engine.sh
[ "$(id -u)" = 0 ] || die "compose-beside-test: needs root (it runs Docker engines)"
state=$(pwd)/.run/other-engine
# Its containers and rules apart from compose-test's engine.
ENGINE_CGROUP=order-system-other-engine
port=38998

# Stops the other engine under the network lock (the holder this run took, or taken here) and
# checks the host against its snapshot; the lock is released whatever happened.
other_down() {
	local rc=0
	if [ -d "$state/engine" ]; then
		if pid_live "$state/lock.pid" >/dev/null || netlock_take "$state/lock.pid"; then
			ENGINE_DIR=$state/engine
			engine_down
			engine_check || rc=1
		else
			rc=1
		fi
	fi
	netlock_release "$state/lock.pid"
	if [ $rc = 0 ]; then rm -rf "$state"; else log "kept $state: '$0 down' tries again"; fi
	return $rc
}

if [ "${1:-}" = down ]; then
	[ -d "$state" ] || { echo "no other engine's state in $state: nothing to stop"; exit 0; }
	if pid=$(pid_live "$state/run.pid"); then die "compose-beside-test is still running (pid $pid): stop it first"; fi
	set +e # each step goes on past what is already gone; the check decides
	other_down || die "something is left (above)"
	log "the other engine is stopped, the host as before it started"
	exit 0
fi
[ ! -e "$state" ] || die "a compose-beside-test that did not finish left $state: '$0 down' first"
engine_install
mkdir -p "$state"
pid_record "$state/run.pid" $$
engine_cli "$state/bin"

log "the other engine: the default socket, docker0, its own iptables rules"
bash deploy/standins/build-rootfs.sh nginx "$state/standins" >"$state/standins.log" 2>&1 ||
	{ tail -20 "$state/standins.log"; exit 1; }
trap 'set +e; other_down' EXIT
netlock_take "$state/lock.pid"
engine_up "$state/engine" system
bash deploy/standins/docker-import.sh "$state/standins/nginx" nginx:1.27-alpine
docker run -d --name bystander -p "127.0.0.1:$port:80" nginx:1.27-alpine >/dev/null
wait_for 30 "the bystander answering on $port" curl -fsS -o /dev/null "http://127.0.0.1:$port/"

# What compose-test must leave as it is: the engine's objects, docker0, and its iptables
# rules, sorted (host_state) and, for FORWARD and DOCKER-USER, in their order as well.
# (Called in a condition, where set -e does not apply: each step fails it explicitly.)
other_state() {
	docker ps -a --no-trunc --format '{{.ID}} {{.Names}} {{.Status}}' | sed 's/ Up .*/ Up/' || return 1
	docker inspect -f '{{.State.Pid}} {{.State.StartedAt}} {{.RestartCount}}' bystander || return 1
	docker images --no-trunc --format '{{.ID}} {{.Repository}}:{{.Tag}}' || return 1
	docker network ls --no-trunc --format '{{.ID}} {{.Name}} {{.Driver}}' || return 1
	ip -o addr show docker0 | awk '{print $2, $3, $4}' || return 1
	host_state iptables | grep -E 'DOCKER|docker0' || return 1
	iptables -S FORWARD | grep -E 'DOCKER|docker0' || return 1
	iptables -S DOCKER-USER
}
other_state >"$state/other.before" || die "the other engine's state could not be read (above)"
log "the other engine runs $(docker ps --format '{{.Names}} ({{.Image}}, {{.Ports}})'); $(grep -c DOCKER "$state/other.before") of its iptables lines recorded"
netlock_release "$state/lock.pid"

log "make compose-test, with DOCKER_HOST naming the other engine's socket"
DOCKER_HOST=unix://$SYSTEM_SOCKET make compose-test

other_state >"$state/other.after" || die "the other engine's state could not be read after compose-test (above)"
if ! diff "$state/other.before" "$state/other.after"; then
	die "the other engine changed while compose-test ran (< before, > after)"
fi
curl -fsS -o /dev/null "http://127.0.0.1:$port/" || die "the bystander no longer answers on $port"
log "the other engine as before: the same $(wc -l <"$state/other.before") lines (its container, images, networks, docker0, iptables), the bystander answering"

trap - EXIT
set +e # each step goes on past what is already gone; the check decides
other_down || die "stopping the other engine left something (above)"
log "passed: compose-test beside another engine left it untouched; the host as before both"

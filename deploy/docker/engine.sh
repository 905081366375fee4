# shellcheck shell=bash
# A Docker engine of its own for tests on a machine without a registry (sourced, bash).
#
#   engine_up <state-dir>   containerd and dockerd with their own roots, socket and pid files
#                           under <state-dir> (never inside a build context); exports DOCKER_HOST.
#                           Pulls fail on this machine: the engine's proxy is a dead loopback
#                           port. Forwarded traffic to the uplink is dropped (DOCKER-USER)
#                           before any container exists.
#   engine_down             stops both by pid and removes what the engine left behind: its
#                           mounts, bridges, cgroups, iptables rules and chains, the shim sockets
#                           and folders the daemons made under /run; ip_forward and the bridge
#                           sysctls go back to their values before engine_up.
#   engine_check            fails, naming each, if a process of the engine is left or the host
#                           differs from the snapshot engine_up took (scripts/lib.sh
#                           host_snapshot: sysctls, iptables and ip6tables, links, routes,
#                           mounts, cgroups, the runtimes' folders).
#   compose_cleanup <state> what the Compose test's exit and make compose-down both do: stop
#                           the helpers recorded in <state>/*.pid and the engine under
#                           <state>/engine, check, release the network lock, remove <state>.
#                           Fails when the check does, keeping <state> for another try.
#
# The caller holds the network lock for the whole up..down span: the engine's rules and
# bridges are told apart from others' by comparing with the state before engine_up.
# Needs root, Debian's docker.io (dockerd, containerd, runc, iptables) and scripts/lib.sh.

# The Compose test's state, the engine's under it: a fixed folder (in .run, which no build
# context includes), so that make compose-down finds it after a run that was killed.
# shellcheck disable=SC2034 # read by the scripts that source this file
COMPOSE_STATE=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.run/compose
ENGINE_BRIDGE_CIDR=${ENGINE_BRIDGE_CIDR:-172.30.0.1/24}
ENGINE_POOL=${ENGINE_POOL:-172.31.0.0/16}
ENGINE_SYSCTLS="net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables"
# The engine's containers live under this cgroup in every hierarchy (cgroupfs driver).
ENGINE_CGROUP=${ENGINE_CGROUP:-order-system-engine}

engine_log() { log "engine: $*" >&2; }

engine_cgroups() { find /sys/fs/cgroup -maxdepth 2 -type d -name "$ENGINE_CGROUP" 2>/dev/null; }

engine_up() {
	ENGINE_DIR=$1
	mkdir -p "$ENGINE_DIR"
	ENGINE_DIR=$(cd "$ENGINE_DIR" && pwd)
	if ip link show docker0 >/dev/null 2>&1; then
		engine_log "a docker0 bridge exists already (another engine?); not starting a second one"
		return 1
	fi
	# The whole host as engine_check compares it and engine_down puts it back
	# (scripts/lib.sh host_snapshot: the rules, links and sysctls among it).
	# shellcheck disable=SC2086 # one word per sysctl
	host_snapshot "$ENGINE_DIR/before" $ENGINE_SYSCTLS
	range_free "$ENGINE_BRIDGE_CIDR" "$ENGINE_POOL" ||
		{ engine_log "ENGINE_BRIDGE_CIDR and ENGINE_POOL pick other ranges"; return 1; }
	[ -z "$(engine_cgroups)" ] || { engine_log "cgroups /$ENGINE_CGROUP exist already (another engine?)"; return 1; }
	ENGINE_UPLINKS=$(ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") print $(i+1)}' | sort -u)
	[ -n "$ENGINE_UPLINKS" ] || ENGINE_UPLINKS=$(ip -o link show | awk -F': ' '$2 != "lo" {print $2}' | sed 's/@.*//')

	# containerd of its own: dockerd would otherwise share a system containerd if one runs.
	mkdir -p "$ENGINE_DIR/containerd"
	cat >"$ENGINE_DIR/containerd/config.toml" <<-EOF
	version = 2
	root = "$ENGINE_DIR/containerd/root"
	state = "$ENGINE_DIR/containerd/state"
	disabled_plugins = ["io.containerd.grpc.v1.cri"]
	[grpc]
	  address = "$ENGINE_DIR/containerd.sock"
	[ttrpc]
	  address = "$ENGINE_DIR/containerd.sock.ttrpc"
	[debug]
	  address = ""
	[metrics]
	  address = ""
	EOF
	start_bg "$ENGINE_DIR/containerd.pid" "$ENGINE_DIR/containerd.log" containerd --config "$ENGINE_DIR/containerd/config.toml"
	wait_for 10 "containerd's socket" test -S "$ENGINE_DIR/containerd.sock" ||
		{ engine_log "containerd did not start"; tail -20 "$ENGINE_DIR/containerd.log" >&2; return 1; }

	echo '{}' >"$ENGINE_DIR/daemon.json"
	HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY= \
		http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 no_proxy= \
		start_bg "$ENGINE_DIR/dockerd.launch.pid" "$ENGINE_DIR/dockerd.log" dockerd --config-file "$ENGINE_DIR/daemon.json" \
		--data-root "$ENGINE_DIR/data" --exec-root "$ENGINE_DIR/exec" \
		--pidfile "$ENGINE_DIR/dockerd.pid" --host "unix://$ENGINE_DIR/docker.sock" \
		--containerd "$ENGINE_DIR/containerd.sock" \
		--bip "$ENGINE_BRIDGE_CIDR" --default-address-pool "base=$ENGINE_POOL,size=24" \
		--storage-driver overlay2 --cgroup-parent "/$ENGINE_CGROUP" --log-level warn
	export DOCKER_HOST=unix://$ENGINE_DIR/docker.sock
	wait_for 30 "dockerd answering" docker version ||
		{ engine_log "dockerd did not start"; tail -30 "$ENGINE_DIR/dockerd.log" >&2; return 1; }

	# The egress guard, before the first container: nothing forwarded leaves by the uplink.
	local dev
	for dev in $ENGINE_UPLINKS; do
		iptables -I DOCKER-USER -o "$dev" -j DROP
		iptables -C DOCKER-USER -o "$dev" -j DROP
	done
	iptables -C FORWARD -j DOCKER-USER
	engine_log "up: $(docker version --format 'Docker Engine {{.Server.Version}}'), egress to $(echo $ENGINE_UPLINKS) dropped"
}

engine_down() {
	[ -n "${ENGINE_DIR:-}" ] && [ -d "$ENGINE_DIR" ] || return 0
	# Only this engine's containers, through its own socket, whatever DOCKER_HOST says: when
	# the engine never started, the default socket may be another engine's.
	local sock=unix://$ENGINE_DIR/docker.sock
	if [ -S "$ENGINE_DIR/docker.sock" ] && docker -H "$sock" version >/dev/null 2>&1; then
		local left
		left=$(docker -H "$sock" ps -aq)
		[ -z "$left" ] || docker -H "$sock" rm -f $left >/dev/null || true
	fi
	stop_pid "$ENGINE_DIR/dockerd.launch.pid" 30
	stop_pid "$ENGINE_DIR/containerd.pid" 30
	# Shims of containers that outlived their engine: found by this engine's own paths.
	local pid
	for pid in $(pgrep -f -- "$ENGINE_DIR/" || true); do kill -KILL "$pid" 2>/dev/null || true; done

	local m
	for m in $(awk -v d="$ENGINE_DIR/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m" || true
	done

	local link
	for link in $(LC_ALL=C comm -13 "$ENGINE_DIR/before/links" <(host_state links)); do
		case $link in docker0 | br-* | veth*) ip link del "$link" 2>/dev/null || true ;; esac
	done

	# What the daemons create outside their own folders whatever they are told: containerd's
	# shim sockets (/run/containerd/s) and dockerd's plugin folder. The sockets the snapshot
	# did not have are this engine's (the network lock keeps other engines away meanwhile),
	# and so are the folders it did not have, once empty.
	local d entry
	if [ -d /run/containerd/s ]; then
		for entry in /run/containerd/s/*; do
			[ -S "$entry" ] && ! grep -qxF "$entry" "$ENGINE_DIR/before/folders" && rm -f "$entry" || true
		done
	fi
	for d in /run/containerd/s /run/containerd /run/docker/plugins /run/docker; do
		[ -d "$d" ] && ! grep -qxF "$d" "$ENGINE_DIR/before/folders" && rmdir "$d" 2>/dev/null || true
	done

	# Empty by now: the containers are gone.
	local cg
	for cg in $(engine_cgroups); do
		find "$cg" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null
		rmdir "$cg" 2>/dev/null || true
	done

	# Rules the engine added, then the chains it created.
	local table rule
	host_state iptables | grep -vxF -f "$ENGINE_DIR/before/iptables" | grep ' -A ' | while read -r table _ rule; do
		eval "iptables -t $table -D $rule" || true
	done
	host_state iptables | grep -vxF -f "$ENGINE_DIR/before/iptables" | grep ' -N ' | while read -r table _ chain; do
		iptables -t "$table" -F "$chain" || true
	done
	host_state iptables | grep -vxF -f "$ENGINE_DIR/before/iptables" | grep ' -N ' | while read -r table _ chain; do
		iptables -t "$table" -X "$chain" || true
	done

	# Policies as they were (dockerd sets FORWARD to DROP when it turns on forwarding).
	grep ' -P ' "$ENGINE_DIR/before/iptables" | while read -r table _ chain policy; do
		iptables -t "$table" -P "$chain" "$policy" || true
	done

	host_restore_sysctls "$ENGINE_DIR/before"
}

engine_check() {
	local bad=0 what
	what=$(pgrep -af -- "$ENGINE_DIR/" || true)
	[ -z "$what" ] || { engine_log "left running: $what"; bad=1; }
	for f in dockerd.launch.pid containerd.pid; do
		if pid_live "$ENGINE_DIR/$f" >/dev/null; then engine_log "left running: $f"; bad=1; fi
	done
	what=$(engine_cgroups)
	[ -z "$what" ] || { engine_log "cgroups left: $what"; bad=1; }
	# shellcheck disable=SC2086 # one word per sysctl
	if ! what=$(host_diff "$ENGINE_DIR/before" $ENGINE_SYSCTLS); then
		engine_log "the host differs from before the engine started (< before, > now):"
		echo "$what" >&2
		bad=1
	fi
	[ $bad = 0 ] && engine_log "after shutdown: no process left, and the host as before it started ($HOST_PARTS: $(wc -l <"$ENGINE_DIR/before/iptables") iptables lines, $(wc -l <"$ENGINE_DIR/before/mounts") mounts, $(tr '\n' ' ' <"$ENGINE_DIR/before/sysctl"| sed 's/ $//'))"
	return $bad
}

compose_cleanup() {
	local state=$1 f rc=0
	for f in "$state"/*.pid; do
		case ${f##*/} in lock.pid | run.pid) ;; *) [ ! -e "$f" ] || stop_pid "$f" 10 ;; esac
	done
	if [ -d "$state/engine" ]; then
		ENGINE_DIR=$state/engine
		engine_down
		engine_check || rc=1
	fi
	netlock_release "$state/lock.pid"
	if [ $rc = 0 ]; then rm -rf "$state"; else engine_log "kept $state: make compose-down tries again"; fi
	return $rc
}

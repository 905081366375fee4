# shellcheck shell=bash
# A Docker engine of its own for tests on a machine without a registry (sourced, bash).
#
#   engine_install          Debian's docker.io and jq, when missing.
#   engine_cli <dir>        Debian's docker CLI first on PATH.
#   engine_up <state-dir> [system]
#                           containerd and dockerd with their own roots and pid files under
#                           <state-dir> (never inside a build context); exports DOCKER_HOST.
#                           Pulls fail on this machine: the engine's proxy is a dead loopback
#                           port. By default the engine is one that can run beside any other:
#                           its own socket, its own bridge ($ENGINE_BRIDGE), no iptables rules
#                           of its own (dockerd --iptables=false: two engines that both manage
#                           iptables remove each other's DOCKER chains), no IP forwarding; the
#                           chain $ENGINE_CHAIN keeps its containers' traffic between its own
#                           networks, before the first container. "system" starts one as a
#                           machine's own engine would run: the default socket, docker0, its
#                           own iptables rules, uplink egress dropped in DOCKER-USER (the other
#                           engine of compose-beside-test.sh).
#   engine_down             stops both by pid and removes what the engine left behind: its
#                           containers (through its own socket, while its dockerd lives),
#                           mounts, bridges, cgroups, iptables rules and chains, the shim
#                           sockets and folders the daemons made under /run; the sysctls go
#                           back to their values before engine_up.
#   engine_check            fails, naming each, if a process of the engine is left or the host
#                           differs from the snapshot engine_up took (scripts/lib.sh
#                           host_snapshot: sysctls, iptables and ip6tables, links, routes,
#                           mounts, cgroups, the runtimes' folders).
#   compose_cleanup <state> what the Compose test's exit and make compose-down both do: stop
#                           the helpers recorded in <state>/*.pid and the engine under
#                           <state>/engine, check, release the network lock, remove <state>.
#                           Fails when the check does, keeping <state> for another try.
#
# The caller holds the network lock from engine_up to engine_check, so that no other script of
# this repository adds a bridge or a chain meanwhile. (compose-beside-test.sh lets its system
# engine run without it while compose-test runs; that engine's clean-up removes only docker0,
# its veths, the DOCKER chains and rules naming them or docker0, none of which the
# compose-test engine makes.)
# engine_down acts only after engine_up has passed its checks and begun to change the host
# (the mark "changed" in the state folder): a refused start leaves what it refused over alone.
# Needs root, Debian's docker.io (dockerd, containerd, runc, iptables) and scripts/lib.sh.

# The Compose test's state, the engine's under it: a fixed folder (in .run, which no build
# context includes), so that make compose-down finds it after a run that was killed.
# shellcheck disable=SC2034 # read by the scripts that source this file
COMPOSE_STATE=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.run/compose
ENGINE_BRIDGE=${ENGINE_BRIDGE:-osengine0}
ENGINE_BRIDGE_CIDR=${ENGINE_BRIDGE_CIDR:-172.30.0.1/24}
ENGINE_POOL=${ENGINE_POOL:-172.31.0.0/16}
ENGINE_CHAIN=ORDER-SYSTEM-ENGINE
ENGINE_SYSCTLS="net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables"
# The engine's containers live under this cgroup in every hierarchy (cgroupfs driver).
ENGINE_CGROUP=${ENGINE_CGROUP:-order-system-engine}
# Where a machine's own engine listens, and its bridge.
SYSTEM_SOCKET=/run/docker.sock

engine_log() { log "engine: $*" >&2; }

# Debian's docker.io (dockerd, containerd, runc, iptables) and jq, when missing. Installing
# must not start a system engine: its daemons stay down and disabled (lib.sh apt_install).
engine_install() {
	command -v dockerd >/dev/null && command -v jq >/dev/null && return 0
	engine_log "installing docker.io and jq from Debian's packages"
	apt_install --no-install-recommends docker.io jq
}

# engine_cli <dir>: Debian's docker CLI, of the engines' version, first on PATH (another
# docker on the machine may be newer), by a link in <dir>.
engine_cli() {
	mkdir -p "$1"
	ln -sf /usr/bin/docker "$1/docker"
	PATH=$1:$PATH
}

engine_cgroups() { find /sys/fs/cgroup -maxdepth 2 -type d -name "$ENGINE_CGROUP" 2>/dev/null; }

# The engine's mode and socket, as engine_up recorded them: engine_down after a killed run
# reads them back.
engine_load() {
	ENGINE_MODE=$(cat "$ENGINE_DIR/mode" 2>/dev/null || echo own)
	if [ "$ENGINE_MODE" = system ]; then ENGINE_SOCKET=$SYSTEM_SOCKET; else ENGINE_SOCKET=$ENGINE_DIR/docker.sock; fi
}

engine_up() {
	ENGINE_DIR=$1
	mkdir -p "$ENGINE_DIR"
	ENGINE_DIR=$(cd "$ENGINE_DIR" && pwd)
	echo "${2:-own}" >"$ENGINE_DIR/mode"
	engine_load
	# The whole host as engine_check compares it and engine_down puts it back (scripts/lib.sh
	# host_snapshot: the rules, links and sysctls among it).
	# shellcheck disable=SC2086 # one word per sysctl
	host_snapshot "$ENGINE_DIR/before" $ENGINE_SYSCTLS
	[ -z "$(engine_cgroups)" ] || { engine_log "cgroups /$ENGINE_CGROUP exist already (another engine?)"; return 1; }
	local -a net
	local uplinks
	if [ "$ENGINE_MODE" = system ]; then
		if [ -e "$SYSTEM_SOCKET" ] || ip link show docker0 >/dev/null 2>&1; then
			engine_log "$SYSTEM_SOCKET or docker0 exists: the machine has an engine already"
			return 1
		fi
		# The uplinks for the egress guard, read before dockerd adds docker0.
		uplinks=$(ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") print $(i+1)}' | sort -u)
		[ -n "$uplinks" ] || uplinks=$(ip -o link show | awk -F': ' '$2 != "lo" {print $2}' | sed 's/@.*//')
		range_free 172.17.0.0/16 || return 1
		# From here on the host changes: engine_down undoes nothing without this mark, so a
		# refused start never touches what it refused over.
		touch "$ENGINE_DIR/changed"
		net=(--host "unix://$SYSTEM_SOCKET")
	else
		if ip link show "$ENGINE_BRIDGE" >/dev/null 2>&1 || iptables -n -L "$ENGINE_CHAIN" >/dev/null 2>&1; then
			engine_log "the bridge $ENGINE_BRIDGE or the chain $ENGINE_CHAIN exists already (another run?)"
			return 1
		fi
		range_free "$ENGINE_BRIDGE_CIDR" "$ENGINE_POOL" ||
			{ engine_log "ENGINE_BRIDGE_CIDR and ENGINE_POOL pick other ranges"; return 1; }
		touch "$ENGINE_DIR/changed"
		ip link add name "$ENGINE_BRIDGE" type bridge
		ip addr add "$ENGINE_BRIDGE_CIDR" dev "$ENGINE_BRIDGE"
		ip link set "$ENGINE_BRIDGE" up
		engine_guard
		net=(--host "unix://$ENGINE_SOCKET" --bridge "$ENGINE_BRIDGE" --default-address-pool "base=$ENGINE_POOL,size=24"
			--iptables=false --ip-forward=false --ip-masq=false)
	fi

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
		--pidfile "$ENGINE_DIR/dockerd.pid" --containerd "$ENGINE_DIR/containerd.sock" "${net[@]}" \
		--storage-driver overlay2 --cgroup-parent "/$ENGINE_CGROUP" --log-level warn
	export DOCKER_HOST=unix://$ENGINE_SOCKET
	wait_for 30 "dockerd answering" docker version ||
		{ engine_log "dockerd did not start"; tail -30 "$ENGINE_DIR/dockerd.log" >&2; return 1; }

	if [ "$ENGINE_MODE" = system ]; then
		# The egress guard, before the first container: nothing forwarded leaves by the uplink.
		local dev
		for dev in $uplinks; do
			iptables -I DOCKER-USER -o "$dev" -j DROP
			iptables -C DOCKER-USER -o "$dev" -j DROP
		done
		iptables -C FORWARD -j DOCKER-USER
		engine_log "up on $SYSTEM_SOCKET: $(docker version --format 'Docker Engine {{.Server.Version}}'), egress to $(echo $uplinks) dropped"
	else
		engine_log "up: $(docker version --format 'Docker Engine {{.Server.Version}}') on $ENGINE_BRIDGE, no iptables rules but $ENGINE_CHAIN's"
	fi
}

# The first rules of FORWARD: traffic between the engine's own networks passes whatever the
# host's policy (another engine sets FORWARD to DROP, and with br_netfilter loaded even a
# bridge's own traffic passes FORWARD); anything else from or to them is dropped, so nothing of
# a container leaves the machine or reaches another's network, with or without IP forwarding.
engine_guard() {
	local nets="$ENGINE_BRIDGE_CIDR $ENGINE_POOL" a b
	iptables -N "$ENGINE_CHAIN"
	for a in $nets; do
		for b in $nets; do iptables -A "$ENGINE_CHAIN" -s "$a" -d "$b" -j ACCEPT; done
	done
	for a in $nets; do
		iptables -A "$ENGINE_CHAIN" -s "$a" -j DROP
		iptables -A "$ENGINE_CHAIN" -d "$a" -j DROP
	done
	iptables -I FORWARD 1 -j "$ENGINE_CHAIN"
}

# The links this engine made, each one the snapshot did not have: its bridge and those of its
# networks (the routes into its address pool name them), or in system mode docker0 (the
# only network the test gives that engine), then the veths on them.
engine_links() {
	local b bridges
	if [ "$ENGINE_MODE" = system ]; then
		bridges=docker0
	else
		bridges="$ENGINE_BRIDGE $({ ip -4 route show root "$ENGINE_POOL" 2>/dev/null || true; } |
			awk '{for (i = 1; i < NF; i++) if ($i == "dev") print $(i+1)}' | sort -u)"
	fi
	for b in $bridges; do
		ip link show "$b" >/dev/null 2>&1 || continue
		{ ip -o link show master "$b" | awk -F': ' '{print $2}' | cut -d@ -f1; echo "$b"; } |
			grep -vxF -f "$ENGINE_DIR/before/links" || true
	done
}

engine_down() {
	[ -n "${ENGINE_DIR:-}" ] && [ -f "$ENGINE_DIR/changed" ] || return 0
	engine_load
	# Only this engine's containers, through its own socket and only while its own dockerd
	# runs, whatever DOCKER_HOST says: another engine may answer on the default socket.
	if pid_live "$ENGINE_DIR/dockerd.launch.pid" >/dev/null && docker -H "unix://$ENGINE_SOCKET" version >/dev/null 2>&1; then
		local left
		left=$(docker -H "unix://$ENGINE_SOCKET" ps -aq)
		[ -z "$left" ] || docker -H "unix://$ENGINE_SOCKET" rm -f $left >/dev/null || true
	fi
	stop_pid "$ENGINE_DIR/dockerd.launch.pid" 30
	stop_pid "$ENGINE_DIR/containerd.pid" 30
	# Shims of containers that outlived their engine: found by this engine's own paths.
	local pid
	for pid in $(pgrep -f -- "$ENGINE_DIR/" || true); do kill -KILL "$pid" 2>/dev/null || true; done
	# The default socket, when this engine's dockerd was started on it and no process serves
	# it any more (that dockerd was killed).
	if [ "$ENGINE_MODE" = system ] && [ -f "$ENGINE_DIR/dockerd.log" ] && [ -S "$SYSTEM_SOCKET" ] &&
		! grep -qxE "(/var)?$SYSTEM_SOCKET" <<<"$(unix_listening)"; then
		rm -f "$SYSTEM_SOCKET"
	fi

	local m
	for m in $(awk -v d="$ENGINE_DIR/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m" || true
	done

	local link
	for link in $(engine_links); do ip link del "$link" 2>/dev/null || true; done

	# What the daemons create outside their own folders whatever they are told: containerd's
	# shim sockets (/run/containerd/s) and dockerd's plugin folder. A socket the snapshot did
	# not have and that no process serves is one of this engine's shims (another engine's
	# running container keeps its own served); the folders the snapshot did not have are
	# removed once empty.
	local d entry served
	if [ -d /run/containerd/s ]; then
		served=$(unix_listening)
		for entry in /run/containerd/s/*; do
			[ -S "$entry" ] && ! grep -qxF "$entry" "$ENGINE_DIR/before/folders" && ! grep -qxF "$entry" <<<"$served" &&
				rm -f "$entry" || true
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

	# The chains it created and the rules in or to them (and in system mode those naming
	# docker0), then the sysctls (scripts/lib.sh host_restore).
	if [ "$ENGINE_MODE" = system ]; then
		host_restore "$ENGINE_DIR/before" '^DOCKER' docker0
		# Policies as they were (dockerd sets FORWARD to DROP when it turns on forwarding).
		grep ' -P ' "$ENGINE_DIR/before/iptables" | while read -r table _ chain policy; do
			iptables -t "$table" -P "$chain" "$policy" || true
		done
	else
		host_restore "$ENGINE_DIR/before" "^$ENGINE_CHAIN\$"
	fi
}

# The paths of the Unix sockets some process listens on.
unix_listening() { ss -xlnH 2>/dev/null | awk '{print $5}'; }

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

#!/usr/bin/env bash
# make cluster-down: stops everything cluster-up started and puts the machine back as
# cluster-up found it, then checks that it is: no process of the cluster left, and the host's
# state (scripts/lib.sh host_snapshot: sysctls, iptables and ip6tables chains and rules,
# links, routes, mounts, network namespaces, cgroups, the container runtime's, kubelet's and
# CNI's folders) equal to the snapshot cluster-up took in .run/cluster/before. Says what
# differs; exits non-zero when anything does. Safe to run after a cluster-up that failed
# half-way.
set -uo pipefail
. "$(dirname "$0")/cluster-env.sh"
[ -d "$STATE" ] || { echo "no cluster state in $STATE: nothing to stop"; exit 0; }
t0=$SECONDS
# The cleanup and its check run under the network lock: the holder cluster-up started, or,
# when that is gone (a second run), the lock taken here, so that nobody else's bridge or
# chain appears meanwhile and is taken for ours.
if [ -z "${CLUSTER_DOWN_LOCKED:-}" ] && ! pid_live "$STATE/lock.pid" >/dev/null; then
	log "waiting for $NET_LOCK"
	CLUSTER_DOWN_LOCKED=1 flock -w "${NET_LOCK_WAIT:-1800}" -E 75 "$NET_LOCK" bash "$0" "$@"
	rc=$?
	[ $rc != 75 ] || echo "could not take $NET_LOCK; it is held by: $(netlock_holders)" >&2
	exit $rc
fi

log "stopping the entry, CoreDNS, kube-proxy, kubelet, scheduler, controller-manager"
for p in entry coredns kube-proxy kubelet kube-scheduler kube-controller-manager; do stop_pid "$STATE/$p.pid" 10; done

log "removing the pods' containers"
if [ -S "$CONTAINERD_SOCK" ]; then
	for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$id" >/dev/null 2>&1; done
	sleep 1
	for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$id" >/dev/null 2>&1; done
	for id in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$id" >/dev/null 2>&1; done
fi
log "stopping containerd, kube-apiserver, etcd"
for p in containerd kube-apiserver etcd; do stop_pid "$STATE/$p.pid" 10; done
# Shims whose containerd is gone: by their --address, which names our socket.
for pid in $(pgrep -f "containerd-shim.*-address $CONTAINERD_SOCK" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done

if [ ! -e "$STATE/before/complete" ]; then
	# cluster-up stopped before its snapshot: it had changed nothing on the host yet.
	netlock_release "$STATE/lock.pid"
	rm -rf "$STATE"
	log "cluster down in $((SECONDS - t0)) s (it had not started)"
	exit 0
fi

log "unmounting"
# Deepest first: what is under our folder, and the network namespaces our pods had.
new_mounts() { LC_ALL=C comm -13 "$STATE/before/mounts" <(host_state mounts) | grep -E "^$STATE/|^/run/netns/cni-|^/var/run/netns/cni-" | sort -r; }
for _ in 1 2 3; do
	for m in $(new_mounts); do umount -l "$m" 2>/dev/null; done
done

log "removing our iptables and ip6tables rules and chains, the bridge, veths and route"
# Ours: the KUBE-* chains of kube-proxy and the kubelet and CNI-* chains created since
# cluster-up, the rules in or to them, and rules naming our comment, bridge or ranges.
host_restore "$STATE/before" '^(KUBE-|CNI-)' "$COMMENT" "$BRIDGE" "$POD_CIDR" "$SERVICE_CIDR"
ip route del "$SERVICE_CIDR" dev "$BRIDGE" 2>/dev/null
for l in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do ip link del "$l" 2>/dev/null; done
ip link del "$BRIDGE" 2>/dev/null

log "cgroups and the runtime's, kubelet's and CNI's files as they were"
for root in /sys/fs/cgroup /sys/fs/cgroup/*/; do
	[ -d "$root/kubepods" ] && find "$root/kubepods" -depth -type d -exec rmdir {} + 2>/dev/null
	[ -d "$root/kubepods.slice" ] && find "$root/kubepods.slice" -depth -type d -exec rmdir {} + 2>/dev/null
done
# Of what appeared in those folders since cluster-up, deepest first, what is ours: our pods'
# network namespace files, CNI results and the kubelet's links to their logs, the sockets of
# our containerd's shims and kubelet that nothing listens on any more, and folders that were
# not there and are empty now. Anything else stays, and the check below names it.
listening=$(ss -xlH 2>/dev/null | awk '{print $5}')
LC_ALL=C comm -13 "$STATE/before/folders" <(host_state folders) | sort -r | while read -r f; do
	case $f in
	/run/netns/cni-* | /var/run/netns/cni-*) rm -f "$f" ;;
	/var/lib/cni/results/order-system-* | /var/lib/cni/results/cni-loopback-*) rm -f "$f" ;;
	/var/log/containers/*) [[ $(readlink "$f") != "$STATE"/* ]] || rm -f "$f" ;;
	# The sockets of our containerd's shims, and the kubelet's device plugin socket, which
	# the kubelet keeps there whatever its root directory.
	/run/containerd/s/* | /var/lib/kubelet/device-plugins/*) { [ -S "$f" ] && ! grep -qxF "$f" <<<"$listening"; } && rm -f "$f" ;;
	*) [ -d "$f" ] && [ ! -L "$f" ] && rmdir "$f" 2>/dev/null ;;
	esac
done

log "checking that the machine is as it was"
left=()
procs=$(pgrep -af "$STATE|$BIN/" 2>/dev/null | grep -v -e "pgrep" -e "cluster-down" || true)
[ -z "$procs" ] || left+=("processes: $procs")
# shellcheck disable=SC2086 # one word per sysctl
if ! differ=$(host_diff "$STATE/before" $SYSCTLS); then left+=("$differ"); fi

log "releasing the network lock"
netlock_release "$STATE/lock.pid"
if [ ${#left[@]} -gt 0 ]; then
	printf 'LEFT BEHIND:\n%s\n' "${left[@]}" >&2
	echo "cluster-down: the state stays in $STATE for a look; run make cluster-down again" >&2
	exit 1
fi
echo "after-down check: no process left; $(wc -l <"$STATE/before/iptables") iptables and $(wc -l <"$STATE/before/ip6tables") ip6tables lines, $(wc -l <"$STATE/before/mounts") mounts, $(wc -l <"$STATE/before/cgroups") cgroups, links, routes, the runtime folders and $(tr '\n' ' ' <"$STATE/before/sysctl" | sed 's/ \([a-z]\)/, \1/g')as before"
rm -rf "$STATE"
log "cluster down in $((SECONDS - t0)) s"

#!/usr/bin/env bash
# make cluster-down: stops everything cluster-up started and puts the machine back as
# cluster-up found it (.run/cluster/before), then checks: no process of the cluster, no mount
# under its folders or of its pods' network namespaces, no iptables chain or rule of its own,
# no bridge, veth, route or CNI result of its pods, sysctls (ip_forward and the conntrack
# timeouts among them) as they were. Says what it found; exits non-zero when anything is
# left. Safe to run after a cluster-up that failed half-way.
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

# Where the CNI plugins keep a result per pod network attachment (libcni's default); the files
# of ours are named after our network (order-system-…) or the loopback plugin.
CNI_RESULTS=/var/lib/cni/results
# cni_results_left lists the CNI result files of our network and of the loopback plugin
# that were not there when cluster-up started.
cni_results_left() {
	comm -13 "$STATE/before/cni-results" <(ls "$CNI_RESULTS" 2>/dev/null | sort) 2>/dev/null | grep -E '^(order-system|cni-loopback)-' || true
}

log "unmounting"
# Deepest first; only what is under our folder or a network namespace our pods had.
mounts() { awk '{print $5}' /proc/self/mountinfo | sed 's/\\040/ /g' | grep -E "^$STATE/|^/run/netns/cni-|^/var/run/netns/cni-" | sort -r; }
for _ in 1 2 3; do
	for m in $(mounts); do umount -l "$m" 2>/dev/null; done
done
for f in /run/netns/*; do
	[ -e "$f" ] || continue # no namespace at all: the glob stayed as written
	ns=${f##*/}
	grep -qx "$ns" "$STATE/before/netns" 2>/dev/null || { umount "/run/netns/$ns" 2>/dev/null; rm -f "/run/netns/$ns"; }
done

log "removing iptables rules and chains"
[ -x "$BIN/kube-proxy" ] && "$BIN/kube-proxy" --cleanup >/dev/null 2>&1
for t in filter nat mangle raw; do
	# Our own rules, by their comment.
	iptables -t "$t" -S 2>/dev/null | grep -- "--comment $COMMENT" | sed 's/^-A /-D /' | while read -r rule; do
		eval "iptables -t $t $rule" 2>/dev/null
	done
	# Chains of kube-proxy and CNI that were not there before (kube-proxy --cleanup removes
	# most): their rules first, then the jumps to them, then the chains.
	new=$(comm -13 "$STATE/before/chains-$t" <(iptables -t "$t" -S 2>/dev/null | grep -E '^-N (KUBE-|CNI-)' | sort) | awk '{print $2}')
	for c in $new; do
		iptables -t "$t" -S 2>/dev/null | grep -E "^-A [^ ]+ .*-j $c( |$)" | sed 's/^-A /-D /' | while read -r rule; do eval "iptables -t $t $rule" 2>/dev/null; done
	done
	for c in $new; do iptables -t "$t" -F "$c" 2>/dev/null; done
	for c in $new; do iptables -t "$t" -X "$c" 2>/dev/null; done
done

log "removing the bridge, veths and route"
ip route del "$SERVICE_CIDR" dev "$BRIDGE" 2>/dev/null
for l in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do ip link del "$l" 2>/dev/null; done
ip link del "$BRIDGE" 2>/dev/null

log "sysctls, cgroups and folders as they were"
while read -r name value; do
	[ "$value" = - ] && continue
	[ "$(sysctl -n "$name" 2>/dev/null)" = "$value" ] || sysctl -qw "$name=$value" >/dev/null 2>&1
done <"$STATE/before/sysctl"
for root in /sys/fs/cgroup/*/; do
	[ -d "$root/kubepods" ] && find "$root/kubepods" -depth -type d -exec rmdir {} + 2>/dev/null
done
# The kubelet's links to our pods' logs, the CNI results of our pods, then the folders that
# were not there before.
find /var/log/containers -maxdepth 1 -lname "$STATE/*" -delete 2>/dev/null
for f in $(cni_results_left); do rm -f "$CNI_RESULTS/$f"; done
for d in /run/netns /var/log/pods /var/log/containers /run/containerd "$CNI_RESULTS" /var/lib/cni; do
	grep -qx "$d" "$STATE/before/dirs" 2>/dev/null && continue
	[ -d "$d" ] && rmdir "$d" 2>/dev/null
done

log "checking that nothing is left"
left=()
procs=$(pgrep -af "$STATE|$BIN/" 2>/dev/null | grep -v -e "pgrep" -e "cluster-down" || true)
[ -z "$procs" ] || left+=("processes: $procs")
m=$(mounts)
[ -z "$m" ] || left+=("mounts: $m")
for t in filter nat mangle raw; do
	c=$(comm -13 "$STATE/before/chains-$t" <(iptables -t "$t" -S 2>/dev/null | grep -E '^-N' | sort) | tr '\n' ' ')
	[ -z "$c" ] || left+=("iptables $t chains: $c")
	r=$(iptables -t "$t" -S 2>/dev/null | grep -e "$COMMENT" -e "$BRIDGE" || true)
	[ -z "$r" ] || left+=("iptables $t rules: $r")
done
l=$(comm -13 "$STATE/before/links" <(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort) | tr '\n' ' ')
[ -z "$l" ] || left+=("links: $l")
r=$(comm -13 "$STATE/before/routes" <(ip route show | sort) | tr '\n' ' ')
[ -z "$r" ] || left+=("routes: $r")
while read -r name value; do
	[ "$value" = - ] && continue
	now=$(sysctl -n "$name" 2>/dev/null)
	[ "$now" = "$value" ] || left+=("sysctl $name: $now, was $value")
done <"$STATE/before/sysctl"
c=$(find /sys/fs/cgroup/*/kubepods -maxdepth 0 2>/dev/null | tr '\n' ' ')
[ -z "$c" ] || left+=("cgroups: $c")
for d in /run/netns /var/log/pods /var/log/containers /var/lib/cni; do
	grep -qx "$d" "$STATE/before/dirs" 2>/dev/null || { [ -e "$d" ] && left+=("folder $d"); }
done
f=$(cni_results_left | tr '\n' ' ')
[ -z "$f" ] || left+=("CNI results: $f")

log "releasing the network lock"
netlock_release "$STATE/lock.pid"
if [ ${#left[@]} -gt 0 ]; then
	printf 'LEFT BEHIND: %s\n' "${left[@]}" >&2
	echo "cluster-down: the state stays in $STATE for a look; run make cluster-down again" >&2
	exit 1
fi
echo "after-down check: no process, mount, iptables chain or rule, bridge, veth, route or CNI result left; $(tr '\n' ' ' <"$STATE/before/sysctl" | sed 's/ \([a-z]\)/, \1/g') as before"
rm -rf "$STATE"
log "cluster down in $((SECONDS - t0)) s"

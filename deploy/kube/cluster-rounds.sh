#!/usr/bin/env bash
# The one-node cluster's whole life, ROUNDS times in a row (2): make cluster-up, make
# cluster-test, make cluster-down; then the host compared with a snapshot taken before the
# first round (scripts/lib.sh host_snapshot: sysctls, iptables and ip6tables, links, routes,
# mounts, cgroups, the CNI, kubelet and runtimes' folders). Each cluster-down checks against
# its own cluster-up's snapshot; this shows that nothing piles up from one round to the next.
# A failed test still brings its cluster down before the script fails. Needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/kube/cluster-env.sh # and scripts/lib.sh, scripts/netlock.sh
rounds=${ROUNDS:-2}
before=$(pwd)/.run/cluster-rounds
rm -rf "$before"
mkdir -p "$before"
trap 'netlock_release "$before/lock.pid"' EXIT
# What cluster-up would install first: on a machine without iptables the snapshot would hold
# no rule at all, and the first round's install would show as a difference.
cluster_tools
# The snapshot and the comparison under the network lock, so that neither catches another
# script of this repository half-way through its changes (a Docker engine left running by
# another between the two still shows as a difference).
netlock_take "$before/lock.pid"
# shellcheck disable=SC2086 # one word per sysctl
host_snapshot "$before/host" $SYSCTLS
netlock_release "$before/lock.pid"
for ((round = 1; round <= rounds; round++)); do
	step "round $round of $rounds: make cluster-up"
	make cluster-up
	step "round $round of $rounds: make cluster-test"
	if ! make cluster-test; then
		make cluster-down || true
		die "round $round: cluster-test failed"
	fi
	step "round $round of $rounds: make cluster-down"
	make cluster-down
done
netlock_take "$before/lock.pid"
rc=0
# shellcheck disable=SC2086 # one word per sysctl
differ=$(host_diff "$before/host" $SYSCTLS) || rc=$?
netlock_release "$before/lock.pid"
if [ $rc != 0 ]; then
	printf 'the host differs from before the first round (< before, > now):\n%s\n' "$differ" >&2
	exit 1
fi
log "$rounds rounds of up, test and down; the host as before the first ($HOST_PARTS: $(wc -l <"$before/host/iptables") iptables lines, $(wc -l <"$before/host/mounts") mounts, $(wc -l <"$before/host/links") links)"
rm -rf "$before"

# shellcheck shell=bash
# shellcheck disable=SC2034 # the settings are used by the scripts that source this file
# Settings shared by cluster-up.sh, cluster-test.sh and cluster-down.sh (sourced).
# Every name and address here is the cluster's own, away from the usual defaults, so that
# nothing else on the machine is touched and cleanup removes only what is ours.
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$REPO/scripts/lib.sh"
. "$REPO/scripts/netlock.sh" # the host network's lock, held by a process of its own
KUBE_CACHE=${KUBE_CACHE:-$REPO/.cache/kube}
STATE=$REPO/.run/cluster              # everything the running cluster writes
BIN=$KUBE_CACHE/bin
IMAGES=$KUBE_CACHE/images             # OCI archives of every image the chart names
NET_LOCK=/tmp/os-net.lock             # held from cluster-up to cluster-down
BRIDGE=oskube0                        # node IP, API server address, pods' gateway
NODE_IP=10.213.0.1
POD_CIDR=10.213.0.0/24
SERVICE_CIDR=10.214.0.0/24
NODE=order-system-node
ETCD_PORT=23792 ETCD_PEER_PORT=23802
API_PORT=16444
ENTRY_PORT=80
RELEASE=order-system
CHART=$REPO/deploy/helm/order-system
COMMENT=order-system-cluster          # marks our own iptables rules
CONTAINERD_SOCK=$STATE/containerd/containerd.sock
export KUBECONFIG=$STATE/kubeconfig
GOPATH_BIN=$(go env GOPATH)/bin
export PATH=$BIN:$PATH:$GOPATH_BIN

kubectl() { "$BIN/kubectl" "$@"; }
ctr_() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }
# cluster_tools: Debian's packages of the programs the cluster runs, installed when missing.
# Their daemons (containerd, etcd, nginx) neither started nor enabled: the cluster runs its own.
# Called before any snapshot of the host, so that what an install adds (iptables' tables
# become visible once iptables is there) is never taken for a change by the cluster.
cluster_tools() {
	local tool missing=()
	for tool in runc containerd ctr etcd conntrack iptables nginx jq; do command -v "$tool" >/dev/null || missing+=("$tool"); done
	[ -x /usr/lib/cni/bridge ] || missing+=(cni)
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing from Debian: ${missing[*]}"
		apt_install runc containerd containernetworking-plugins etcd-server conntrack iptables nginx jq
	fi
}
# The sysctls that the cluster's parts may change; cluster-down puts back what cluster-up found.
SYSCTLS="net.ipv4.ip_forward net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables
vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys
kernel.keys.root_maxbytes net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established
net.netfilter.nf_conntrack_tcp_timeout_close_wait"
# chart_render [helm template flags]: the chart with the values cluster-up installs it with,
# for the API server's version (helm's own default is older than the chart's kubeVersion).
chart_render() {
	local version
	version=$(kubectl version -o json | jq -r .serverVersion.gitVersion)
	helm template "$RELEASE" "$CHART" -f "$STATE/values.yaml" --kube-version "$version" "$@"
}
# chart_images: every image the chart names with the values cluster-up installs it with.
chart_images() {
	local manifests
	manifests=$(chart_render "$@")
	sed -n 's/^ *image: "\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' <<<"$manifests" | sort -u
}
# render <file>: the configuration document deploy/kube/config/<file> with each ${name} in it
# replaced by the value of that shell variable, which must be set. Only the names the file uses
# are substituted, so any other $ in a document is left as it is.
render() {
	local template=$REPO/deploy/kube/config/$1 names n
	names=$({ grep -o '\${[A-Za-z_][A-Za-z0-9_]*}' "$template" || true; } | sort -u | tr '\n' ' ')
	(
		for n in $names; do
			n=${n#\$\{}
			n=${n%\}}
			[ -n "${!n+set}" ] || { echo "render $1: \$$n is not set" >&2; exit 1; }
			export "${n?}"
		done
		envsubst "$names" <"$template"
	)
}

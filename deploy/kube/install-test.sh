#!/usr/bin/env bash
# Installs the helm chart into a real Kubernetes API server running on this machine (etcd +
# kube-apiserver, no kubelet): helm install, upgrade and uninstall must be accepted and every
# object stored. Pods do not run here (there is no kubelet or container runtime): this proves
# the chart installs, not that the pods start. Stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
CHART=deploy/helm/order-system

command -v etcd >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null; }
bash deploy/kube/install-helm.sh
APISERVER="$(bash deploy/kube/build-kube.sh)/kube-apiserver"

work=$(mktemp -d)
pids=()
cleanup() {
	# The API server first (it waits for etcd while shutting down), then etcd; whatever
	# has not exited after 10 s is killed.
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill "${pids[i]}" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "${pids[i]}" 2>/dev/null || break; sleep 0.2; done
		kill -9 "${pids[i]}" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

openssl genrsa -out "$work/sa.key" 2048 2>/dev/null
openssl rsa -in "$work/sa.key" -pubout -out "$work/sa.pub" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=kube-apiserver" -addext "subjectAltName=IP:127.0.0.1" \
	-keyout "$work/srv.key" -out "$work/srv.crt" 2>/dev/null
echo "admin-token,admin,admin,system:masters" >"$work/tokens.csv"

# Ports away from the defaults, so a developer's own cluster is not disturbed.
etcd --data-dir "$work/etcd" --listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
	--listen-peer-urls http://127.0.0.1:23800 >"$work/etcd.log" 2>&1 &
pids+=($!)
"$APISERVER" --etcd-servers=http://127.0.0.1:23790 --secure-port=16443 --bind-address=127.0.0.1 \
	--service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$work/sa.pub" \
	--service-account-signing-key-file="$work/sa.key" --tls-cert-file="$work/srv.crt" --tls-private-key-file="$work/srv.key" \
	--token-auth-file="$work/tokens.csv" --authorization-mode=RBAC --service-cluster-ip-range=10.96.0.0/16 \
	>"$work/apiserver.log" 2>&1 &
pids+=($!)

cat >"$work/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://127.0.0.1:16443", insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: admin-token}}]
contexts: [{name: local, context: {cluster: local, user: admin, namespace: default}}]
current-context: local
KC
export KUBECONFIG="$work/kubeconfig"
api() { curl -sk -H "Authorization: Bearer admin-token" "https://127.0.0.1:16443$1"; }

for _ in $(seq 120); do
	[ "$(api /readyz 2>/dev/null)" = "ok" ] && break
	sleep 1
done
[ "$(api /readyz)" = "ok" ] || { tail -20 "$work/apiserver.log"; exit 1; }
echo "kube-apiserver $(api /version | sed -n 's/.*"gitVersion": "\(.*\)".*/\1/p') is ready"

# Objects of each kind the chart must have created, counted through the API.
count() { api "$1" | grep -c '"uid"' || true; }
expect() { # path, minimum, what
	local n
	n=$(count "$1")
	if [ "$n" -lt "$2" ]; then
		echo "FAIL: $3: $n stored, want at least $2" >&2
		exit 1
	fi
	echo "ok: $3: $n"
}
check_installed() {
	expect /apis/apps/v1/namespaces/default/deployments 5 "deployments (4 services + index)"
	expect /apis/apps/v1/namespaces/default/statefulsets 2 "statefulsets (postgresql, rabbitmq)"
	expect /api/v1/namespaces/default/services 7 "services"
	expect /api/v1/namespaces/default/configmaps 6 "configmaps"
	expect /api/v1/namespaces/default/secrets 6 "secrets"
	expect /apis/networking.k8s.io/v1/namespaces/default/ingresses 1 "ingress"
	expect /apis/networking.k8s.io/v1/namespaces/default/networkpolicies 1 "network policy"
	local order
	order=$(api /apis/apps/v1/namespaces/default/deployments/order-system-order)
	grep -q '"name": "migrate"' <<<"$order" || { echo "FAIL: the order deployment has no migrate init container" >&2; exit 1; }
	echo "ok: the order deployment runs migrate in an init container"
}

helm install order-system "$CHART" --wait=false
check_installed
helm upgrade order-system "$CHART" --set global.logLevel=debug --wait=false
revision=$(helm history order-system | tail -1 | awk '{print $1}')
[ "$revision" = "2" ] || { echo "FAIL: revision $revision after the upgrade, want 2" >&2; exit 1; }
echo "ok: upgraded to revision 2"
config=$(api /api/v1/namespaces/default/configmaps/order-system-order)
grep -q '"LOG_LEVEL": "debug"' <<<"$config" || { echo "FAIL: the upgrade did not change LOG_LEVEL" >&2; exit 1; }
echo "ok: the upgrade changed LOG_LEVEL"
helm uninstall order-system
left=$(count /apis/apps/v1/namespaces/default/deployments)
[ "$left" -eq 0 ] || { echo "FAIL: $left deployments left after uninstall" >&2; exit 1; }
echo "ok: uninstall removed everything"
echo "helm install, upgrade and uninstall accepted by a real kube-apiserver (no kubelet here: no pod ran)"

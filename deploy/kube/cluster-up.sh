#!/usr/bin/env bash
# make cluster-up: a real one-node Kubernetes on this machine, with order-system installed in
# it (two replicas of every service) and an HTTP entry in front of its Ingress.
#
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, a kubelet on containerd,
# kube-proxy (iptables) and CoreDNS, all built from source (deploy/kube/build-kube.sh) or from
# Debian. The node's network is a bridge of our own that is node IP, API server address and
# pods' gateway; no pod can reach beyond this machine (a FORWARD rule added right after the
# bridge) and no image is ever looked up in a registry (every registry points at a dead
# port; every image the chart names is imported first). The machine's state before is kept
# in .run/cluster/before so that cluster-down can put it back and check it did.
#
# The last line printed is `entry: http://<ip>:<port>`, the address that serves Host
# arch.homework (e.g. HTTP_PROXY=http://<ip>:<port> newman run ... with baseUrl http://arch.homework).
set -euo pipefail
. "$(dirname "$0")/cluster-env.sh"
cd "$REPO"
t0=$SECONDS

[ ! -e "$STATE/up" ] || { echo "a cluster is up already (make cluster-down first)" >&2; exit 1; }

step "tools"
cluster_tools
bash deploy/kube/install-helm.sh >/dev/null
bash deploy/helm/dependencies.sh # each subchart's copy of the library chart
bash deploy/kube/build-kube.sh >/dev/null
(cd tools/ingressentry && go build -o "$BIN/ingressentry" .)
(cd tools/loadgen && go build -o "$BIN/loadgen" .)

step "images"
TAG=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$CHART/Chart.yaml")
bash deploy/kube/images.sh standins
bash deploy/kube/images.sh services "$TAG"

step "network lock"
mkdir -p "$STATE/logs" "$STATE/before"
# A holder process keeps the lock from here to cluster-down: other work that creates bridges
# or iptables chains waits for it.
# (The pid file comes through the environment, so no process line names the cluster's folder
# once cluster-down has stopped everything but this holder.)
netlock_take "$STATE/lock.pid"
touch "$STATE/up"

step "the machine as it was"
# shellcheck disable=SC2086 # one word per sysctl
host_snapshot "$STATE/before" $SYSCTLS

step "node network"
# The pods' and Services' ranges must be nobody's on this host: a route there would be
# shadowed by the bridge's, and traffic to it would not be the egress guard's to drop.
range_free "$POD_CIDR" "$SERVICE_CIDR" || die "the cluster's ranges (deploy/kube/cluster-env.sh) are in use here"
ip link add "$BRIDGE" type bridge
# Egress guard first: nothing from the pods leaves through another interface; pod to pod
# (and pod to Service, once translated) stays on the bridge.
iptables -I FORWARD 1 -i "$BRIDGE" ! -o "$BRIDGE" -m comment --comment "$COMMENT" -j DROP
iptables -I FORWARD 2 -i "$BRIDGE" -o "$BRIDGE" -m comment --comment "$COMMENT" -j ACCEPT
# The host itself, from the pods: only the cluster's DNS server and the API server (the
# kubernetes Service). The replies to the host's own connections (probes, the HTTP entry)
# pass as established; every other port of the host, its other services' included, is closed
# to the pods.
iptables -I INPUT 1 -i "$BRIDGE" -m conntrack --ctstate ESTABLISHED,RELATED -m comment --comment "$COMMENT" -j ACCEPT
iptables -I INPUT 2 -i "$BRIDGE" -d "$NODE_IP" -p udp --dport 53 -m comment --comment "$COMMENT" -j ACCEPT
iptables -I INPUT 3 -i "$BRIDGE" -d "$NODE_IP" -p tcp -m multiport --dports "53,$API_PORT" -m comment --comment "$COMMENT" -j ACCEPT
iptables -I INPUT 4 -i "$BRIDGE" -m comment --comment "$COMMENT" -j DROP
ip addr add "$NODE_IP/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
# Cluster IPs never go out through the default route.
ip route add "$SERVICE_CIDR" dev "$BRIDGE"

step "certificates and kubeconfig"
pki=$STATE/pki
mkdir -p "$pki"
openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=kube-apiserver" \
	-addext "subjectAltName=IP:$NODE_IP,IP:127.0.0.1,IP:${SERVICE_CIDR%.0/24}.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" \
	-keyout "$pki/apiserver.key" -out "$pki/apiserver.crt" 2>/dev/null
token=$(openssl rand -hex 16)
echo "$token,admin,admin,system:masters" >"$pki/tokens.csv"
render kubeconfig.yaml >"$KUBECONFIG"
chmod 600 "$KUBECONFIG"
# The kubelet refuses anonymous requests: it accepts client certificates of its own CA, and
# bearer tokens, and asks the API server whether each caller may do what it asks. The API
# server calls it (exec, logs) with a certificate of that CA.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=kubelet-client-ca" \
	-keyout "$pki/kubelet-ca.key" -out "$pki/kubelet-ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
	-keyout "$pki/apiserver-kubelet-client.key" -out "$pki/apiserver-kubelet-client.csr" 2>/dev/null
openssl x509 -req -days 2 -in "$pki/apiserver-kubelet-client.csr" -CA "$pki/kubelet-ca.crt" -CAkey "$pki/kubelet-ca.key" \
	-CAcreateserial -out "$pki/apiserver-kubelet-client.crt" 2>/dev/null

# start <name> <command...>: runs a part in the background, its pid in $STATE/<name>.pid.
start() {
	local name=$1
	shift
	start_bg "$STATE/$name.pid" "$STATE/logs/$name.log" "$@"
}

step "etcd and kube-apiserver"
start etcd etcd --name order-system --data-dir "$STATE/etcd" \
	--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
	--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
	--initial-cluster "order-system=http://127.0.0.1:$ETCD_PEER_PORT"
start kube-apiserver "$BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
	--bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port="$API_PORT" \
	--service-cluster-ip-range="$SERVICE_CIDR" --service-node-port-range=30000-30100 \
	--service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$pki/sa.pub" \
	--service-account-signing-key-file="$pki/sa.key" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
	--token-auth-file="$pki/tokens.csv" --authorization-mode=RBAC --anonymous-auth=false \
	--kubelet-preferred-address-types=InternalIP \
	--kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" --kubelet-client-key="$pki/apiserver-kubelet-client.key"
wait_for 120 "kube-apiserver" kubectl get --raw /readyz

step "containerd (every registry at a dead port)"
ctrd=$STATE/containerd
mkdir -p "$ctrd/certs.d/_default" "$STATE/cni/net.d"
render registry-hosts.toml >"$ctrd/certs.d/_default/hosts.toml"
render containerd.toml >"$ctrd/config.toml"
render cni.conflist >"$STATE/cni/net.d/10-order-system.conflist"
start containerd containerd --config "$ctrd/config.toml"
wait_for 60 "containerd" ctr --address "$CONTAINERD_SOCK" version

step "import the images"
render values.yaml >"$STATE/values.yaml"
for f in "$IMAGES"/pause.oci.tar "$IMAGES"/postgres.oci.tar "$IMAGES"/rabbitmq.oci.tar "$IMAGES"/nginx-unprivileged.oci.tar "$IMAGES"/*-"$TAG".oci.tar; do
	ctr_ images import --no-unpack "$f" >/dev/null
done
# Every image the chart names must be there before the first pod: a missing one would be
# looked up (at the dead port, but never anywhere else).
imported=$(ctr_ images ls -q | grep -v '^sha256:')
images=$(chart_images)
[ -n "$images" ] || { echo "the chart names no image" >&2; exit 1; }
for image in $images; do
	case $image in */*/*) full=$image ;; */*) full=docker.io/$image ;; *) full=docker.io/library/$image ;; esac
	grep -qx "$full" <<<"$imported" || { echo "the chart names $image, which is not imported" >&2; exit 1; }
done
log "imported: $(tr '\n' ' ' <<<"$imported")"

step "controller-manager, scheduler, kubelet, kube-proxy, CoreDNS"
start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig="$KUBECONFIG" \
	--service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/apiserver.crt" \
	--leader-elect=false --bind-address=127.0.0.1 --secure-port=20257 --use-service-account-credentials=false
start kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$KUBECONFIG" --leader-elect=false \
	--bind-address=127.0.0.1 --secure-port=20259
mkdir -p "$STATE/kubelet" "$STATE/pod-logs"
render kubelet.yaml >"$STATE/kubelet.yaml"
start kubelet "$BIN/kubelet" --config="$STATE/kubelet.yaml" --kubeconfig="$KUBECONFIG" --root-dir="$STATE/kubelet" \
	--cert-dir="$STATE/kubelet/pki" --hostname-override="$NODE" --node-ip="$NODE_IP"
render kube-proxy.yaml >"$STATE/kube-proxy.yaml"
start kube-proxy "$BIN/kube-proxy" --config="$STATE/kube-proxy.yaml"
render Corefile >"$STATE/Corefile"
start coredns "$BIN/coredns" -conf "$STATE/Corefile"
wait_for 120 "node $NODE Ready" bash -c "kubectl get node $NODE -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
wait_for 60 "the default ServiceAccount" kubectl get serviceaccount default

step "volumes"
# No provisioner: hostPath volumes bound in advance to the claims of the StatefulSets, one per
# replica (data-<statefulset>-<n>), owned by the users the pods run as (hostPath ignores fsGroup).
brokers=$(chart_render --show-only charts/rabbitmq/templates/statefulset.yaml | sed -n 's/^  replicas: *//p')
[ -n "$brokers" ] || { echo "no replica count in the broker's StatefulSet" >&2; exit 1; }
for v in postgresql:70:70:1 rabbitmq:100:101:$brokers; do
	IFS=: read -r sts uid gid replicas <<<"$v"
	for ((n = 0; n < replicas; n++)); do
		# shellcheck disable=SC2034 # read by render
		name=$sts-$n claim=data-$RELEASE-$sts-$n
		mkdir -p "$STATE/volumes/$name"
		chown "$uid:$gid" "$STATE/volumes/$name"
		render volume.yaml | kubectl apply -f - >/dev/null
	done
done
log "volumes: postgresql-0, rabbitmq-0..$((brokers - 1))"

step "helm install --wait"
t1=$SECONDS
helm install "$RELEASE" "$CHART" -f "$STATE/values.yaml" --wait --timeout 6m >/dev/null
log "installed in $((SECONDS - t1)) s"
kubectl get pods -o wide

step "HTTP entry"
bash deploy/kube/entry.sh
log "cluster up in $((SECONDS - t0)) s"
echo "entry: http://$NODE_IP:$ENTRY_PORT"

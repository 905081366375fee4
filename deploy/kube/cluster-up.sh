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
step() { log "== $* (${SECONDS}s)"; }

[ ! -e "$STATE/up" ] || { echo "a cluster is up already (make cluster-down first)" >&2; exit 1; }

step "tools"
missing=()
for tool in runc containerd ctr etcd conntrack iptables nginx jq; do command -v "$tool" >/dev/null || missing+=("$tool"); done
[ -x /usr/lib/cni/bridge ] || missing+=(cni)
if [ ${#missing[@]} -gt 0 ]; then
	log "installing from Debian: ${missing[*]}"
	apt-get -o DPkg::Lock::Timeout=300 update -qq
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
		runc containerd containernetworking-plugins etcd-server conntrack iptables nginx jq >/dev/null
fi
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
for s in $SYSCTLS; do echo "$s $(sysctl -n "$s" 2>/dev/null || echo -)"; done >"$STATE/before/sysctl"
for t in filter nat mangle raw; do iptables -t "$t" -S 2>/dev/null | grep -E '^-N' | sort >"$STATE/before/chains-$t" || true; done
ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort >"$STATE/before/links"
ip route show | sort >"$STATE/before/routes"
for d in /run/netns /var/log/pods /var/log/containers /run/containerd /var/lib/cni "$CNI_RESULTS"; do [ -e "$d" ] && echo "$d"; done >"$STATE/before/dirs" || true
ls "$CNI_RESULTS" 2>/dev/null | sort >"$STATE/before/cni-results" || true
ls /run/netns 2>/dev/null | sort >"$STATE/before/netns" || true

step "node network"
ip link add "$BRIDGE" type bridge
# Egress guard first: nothing from the pods leaves through another interface; pod to pod
# (and pod to Service, once translated) stays on the bridge.
iptables -I FORWARD 1 -i "$BRIDGE" ! -o "$BRIDGE" -m comment --comment "$COMMENT" -j DROP
iptables -I FORWARD 2 -i "$BRIDGE" -o "$BRIDGE" -m comment --comment "$COMMENT" -j ACCEPT
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
cat >"$KUBECONFIG" <<KC
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://$NODE_IP:$API_PORT", certificate-authority: "$pki/apiserver.crt"}}]
users: [{name: admin, user: {token: "$token"}}]
contexts: [{name: local, context: {cluster: local, user: admin, namespace: default}}]
current-context: local
KC
chmod 600 "$KUBECONFIG"

# start <name> <command...>: runs a part in the background, its pid in $STATE/<name>.pid.
start() {
	local name=$1
	shift
	setsid "$@" </dev/null >"$STATE/logs/$name.log" 2>&1 &
	pid_record "$STATE/$name.pid" $!
}
# wait_for <what> <seconds> <command...>
wait_for() {
	local what=$1 n=$2
	shift 2
	for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
	echo "timed out waiting for $what" >&2
	return 1
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
	--kubelet-preferred-address-types=InternalIP
wait_for "kube-apiserver" 120 kubectl get --raw /readyz

step "containerd (every registry at a dead port)"
ctrd=$STATE/containerd
mkdir -p "$ctrd/certs.d/_default" "$STATE/cni/net.d"
printf 'server = "http://127.0.0.1:9"\n[host."http://127.0.0.1:9"]\n  capabilities = ["pull", "resolve"]\n' >"$ctrd/certs.d/_default/hosts.toml"
cat >"$ctrd/config.toml" <<TOML
version = 2
root = "$ctrd/root"
state = "$ctrd/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.internal.v1.opt"]
  path = "$ctrd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "order-system.local/pause:1"
  # Root here may not lower oom_score_adj: without this every sandbox fails to start.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "$ctrd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$ctrd/certs.d"
TOML
cat >"$STATE/cni/net.d/10-order-system.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "order-system",
  "plugins": [{
    "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
    "ipam": {"type": "host-local", "dataDir": "$STATE/cni/ipam", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
             "routes": [{"dst": "0.0.0.0/0"}]}
  }]
}
JSON
start containerd containerd --config "$ctrd/config.toml"
wait_for "containerd" 60 ctr --address "$CONTAINERD_SOCK" version

step "import the images"
write_values() {
	cat <<-VALUES
	global:
	  image: { tag: "$TAG", pullPolicy: IfNotPresent }
	user: { replicas: 2, pool: { maxOpenConns: 5, relayMaxOpenConns: 1 } }
	billing: { replicas: 2, pool: { maxOpenConns: 5 } }
	order: { replicas: 2, pool: { maxOpenConns: 5, relayMaxOpenConns: 1 } }
	notification: { replicas: 2, pool: { maxOpenConns: 5 } }
	VALUES
}
write_values >"$STATE/values.yaml"
for f in "$IMAGES"/pause.oci.tar "$IMAGES"/postgres.oci.tar "$IMAGES"/rabbitmq.oci.tar "$IMAGES"/nginx-unprivileged.oci.tar "$IMAGES"/*-"$TAG".oci.tar; do
	ctr_ images import --no-unpack "$f" >/dev/null
done
# Every image the chart names must be there before the first pod: a missing one would be
# looked up (at the dead port, but never anywhere else).
imported=$(ctr_ images ls -q | grep -v '^sha256:')
for image in $(chart_images); do
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
cat >"$STATE/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 20250
healthzBindAddress: 127.0.0.1
healthzPort: 20248
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
podLogsDir: $STATE/pod-logs
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
resolvConf: ""
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
authentication: { anonymous: { enabled: true }, webhook: { enabled: false } }
authorization: { mode: AlwaysAllow }
evictionHard: { memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%" }
imageGCHighThresholdPercent: 100
serializeImagePulls: false
YAML
start kubelet "$BIN/kubelet" --config="$STATE/kubelet.yaml" --kubeconfig="$KUBECONFIG" --root-dir="$STATE/kubelet" \
	--cert-dir="$STATE/kubelet/pki" --hostname-override="$NODE" --node-ip="$NODE_IP"
cat >"$STATE/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: { kubeconfig: "$KUBECONFIG" }
hostnameOverride: $NODE
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:20256
metricsBindAddress: 127.0.0.1:20249
oomScoreAdj: 0
conntrack: { maxPerCore: 0 }
iptables: { localhostNodePorts: false }
YAML
start kube-proxy "$BIN/kube-proxy" --config="$STATE/kube-proxy.yaml"
cat >"$STATE/Corefile" <<COREFILE
.:53 {
    bind $NODE_IP
    errors
    health 127.0.0.1:20280
    ready 127.0.0.1:20281
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $KUBECONFIG local
        pods insecure
    }
    cache 30
}
COREFILE
start coredns "$BIN/coredns" -conf "$STATE/Corefile"
wait_for "node $NODE Ready" 120 bash -c "kubectl get node $NODE -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
wait_for "the default ServiceAccount" 60 kubectl get serviceaccount default

step "volumes"
# No provisioner: hostPath volumes bound in advance to the claims of the StatefulSets, owned by
# the users the pods run as (hostPath ignores fsGroup).
for v in postgresql:70:70 rabbitmq:100:101; do
	IFS=: read -r name uid gid <<<"$v"
	mkdir -p "$STATE/volumes/$name"
	chown "$uid:$gid" "$STATE/volumes/$name"
	kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolume
metadata: { name: $RELEASE-$name }
spec:
  capacity: { storage: 1Gi }
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: { path: "$STATE/volumes/$name", type: Directory }
  claimRef: { namespace: default, name: data-$RELEASE-$name-0 }
YAML
done

step "helm install --wait"
t1=$SECONDS
helm install "$RELEASE" "$CHART" -f "$STATE/values.yaml" --wait --timeout 6m >/dev/null
log "installed in $((SECONDS - t1)) s"
kubectl get pods -o wide

step "HTTP entry"
bash deploy/kube/entry.sh
log "cluster up in $((SECONDS - t0)) s"
echo "entry: http://$NODE_IP:$ENTRY_PORT"

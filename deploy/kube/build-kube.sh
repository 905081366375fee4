#!/usr/bin/env bash
# Builds the Kubernetes node and control-plane programs and a cluster DNS server from the Go
# module proxy into $KUBE_CACHE/bin (default .cache/kube under the repository, git-ignored), and
# reuses them when present. One binary holds kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy and kubectl and picks one by the name it is started as
# (linked under each name): they share most of their code, so one link step instead of six.
# CoreDNS is built with only the plugins a cluster's own names need, and without `forward`,
# so no query ever leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
KUBE_VERSION=${KUBE_VERSION:-1.37.2}
COREDNS_VERSION=${COREDNS_VERSION:-1.15.0}
KUBE_CACHE=${KUBE_CACHE:-$PWD/.cache/kube}
BIN="$KUBE_CACHE/bin"
mkdir -p "$BIN"
# The sources live under the repository, whose go.work must not take them in.
export GOFLAGS=-mod=mod GOWORK=off
. "$REPO/scripts/gobuild.sh"

kube="$BIN/kube-v$KUBE_VERSION"
if [ ! -x "$kube" ]; then
	src="$KUBE_CACHE/src/kube-v$KUBE_VERSION"
	mkdir -p "$src"
	cd "$src"
	[ -f go.mod ] || go mod init kube >/dev/null 2>&1
	dir=$(go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	# k8s.io/kubernetes names its staging modules as v0.0.0 with local replaces; outside its
	# repository each is replaced by the matching published release.
	for m in $(grep -oE 'k8s.io/[a-z0-9-]+ => \./staging' "$dir/go.mod" | awk '{print $1}'); do
		go mod edit -replace="$m=$m@v0.${KUBE_VERSION#1.}"
	done
	go mod edit -require="k8s.io/kubernetes@v$KUBE_VERSION"
	cp "$REPO/deploy/kube/kubebin/main.go" main.go
	go mod tidy >&2
	# Without the version stamp the programs report v0.0.0-master and charts' kubeVersion checks fail.
	go_build_progress "Kubernetes v$KUBE_VERSION" . -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=v$KUBE_VERSION" -o "$kube.tmp"
	mv "$kube.tmp" "$kube"
	cd - >/dev/null
fi
for name in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
	ln -sfn "$(basename "$kube")" "$BIN/$name"
done

coredns="$BIN/coredns-v$COREDNS_VERSION"
if [ ! -x "$coredns" ]; then
	src="$KUBE_CACHE/src/coredns-v$COREDNS_VERSION"
	mkdir -p "$src"
	cd "$src"
	[ -f go.mod ] || go mod init clusterdns >/dev/null 2>&1
	go mod edit -require="github.com/coredns/coredns@v$COREDNS_VERSION"
	cp "$REPO/deploy/kube/dnsbin/main.go" main.go
	go mod tidy >&2
	go_build_progress "CoreDNS v$COREDNS_VERSION" . -trimpath -ldflags "-s -w" -o "$coredns.tmp"
	mv "$coredns.tmp" "$coredns"
	cd - >/dev/null
fi
ln -sfn "$(basename "$coredns")" "$BIN/coredns"
echo "$BIN"

#!/usr/bin/env bash
# Prints the path of one file holding the standard Gateway API CRDs of sigs.k8s.io/gateway-api
# (v1.6.3 unless GATEWAY_API_VERSION says otherwise), taken from the Go module proxy, whose
# module carries them under config/crd/standard.
set -euo pipefail
VERSION=${GATEWAY_API_VERSION:-1.6.3}
KUBE_CACHE=${KUBE_CACHE:-$(cd "$(dirname "$0")/../.." && pwd)/.cache/kube}
out=$KUBE_CACHE/gateway-api-v$VERSION-standard.yaml
if [ ! -s "$out" ]; then
	dir=$(cd /tmp && GOFLAGS= GOWORK=off go mod download -json "sigs.k8s.io/gateway-api@v$VERSION" | jq -r .Dir)
	mkdir -p "$KUBE_CACHE"
	for f in "$dir"/config/crd/standard/*.yaml; do printf -- '---\n'; cat "$f"; done >"$out.tmp"
	mv "$out.tmp" "$out"
fi
echo "$out"

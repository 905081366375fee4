#!/usr/bin/env bash
# Builds, as OCI archives under $IMAGES, every image a cluster-up needs, without a registry:
#   images.sh standins        the stand-ins for postgres, rabbitmq and the index's nginx
#                             (deploy/standins), the distroless base and the sandbox image;
#                             built once, then reused
#   images.sh services <tag>  order-system-<service>:<tag> from the current sources: the same
#                             static binary, user, layout and entrypoint as deploy/Dockerfile;
#                             and order-system-devidp:<tag>, the development OpenID provider
#                             (tools/devidp) the chart runs with global.auth.devProvider
set -euo pipefail
. "$(dirname "$0")/cluster-env.sh"
mkdir -p "$IMAGES"

standins() {
	local out=$KUBE_CACHE/standins
	mkdir -p "$out"
	# stand-in → the image the chart names, as containerd spells it in full
	local -A names=(
		[postgres]="docker.io/library/postgres:15-alpine"
		[rabbitmq]="docker.io/library/rabbitmq:3.13-management-alpine"
		[nginx-unprivileged]="docker.io/nginxinc/nginx-unprivileged:1.27-alpine"
		[distroless]=""
	)
	local s
	for s in "${!names[@]}"; do
		[ -f "$out/$s.tar" ] || bash "$REPO/deploy/standins/build-rootfs.sh" "$s" "$out" >&2
		[ -n "${names[$s]}" ] && [ ! -f "$IMAGES/$s.oci.tar" ] &&
			bash "$REPO/deploy/kube/oci-image.sh" "$IMAGES/$s.oci.tar" "${names[$s]}" "$out/$s.json" "$out/$s.tar"
	done

	# The pod sandbox: a static program that waits for SIGTERM (deploy/kube/pause).
	if [ ! -f "$IMAGES/pause.oci.tar" ]; then
		local src=$KUBE_CACHE/src/pause
		mkdir -p "$src/root"
		cp "$REPO/deploy/kube/pause/main.go" "$src/main.go"
		(cd "$src" && GOWORK=off GO111MODULE=off CGO_ENABLED=0 go build -trimpath -ldflags=-s -o root/pause main.go)
		tar -C "$src/root" --numeric-owner --owner=0 --group=0 -cf "$src/layer.tar" pause
		echo '{"Entrypoint": ["/pause"], "User": "65535:65535"}' >"$src/config.json"
		bash "$REPO/deploy/kube/oci-image.sh" "$IMAGES/pause.oci.tar" "order-system.local/pause:1" "$src/config.json" "$src/layer.tar"
	fi
}

services() {
	local tag=${1:?usage: images.sh services <tag>}
	local work=$KUBE_CACHE/src/services
	rm -rf "$work"
	mkdir -p "$work"
	echo '{"Entrypoint": ["/app"], "User": "65532:65532", "WorkingDir": "/home/nonroot",
		"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", "HTTP_ADDR=:8080"],
		"ExposedPorts": {"8080/tcp": {}}}' >"$work/config.json"
	local svc
	local -A src=([user]=services/user/cmd/user [billing]=services/billing/cmd/billing
		[order]=services/order/cmd/order [notification]=services/notification/cmd/notification [devidp]=tools/devidp)
	for svc in user billing order notification devidp; do
		mkdir -p "$work/$svc"
		(cd "$REPO/${src[$svc]}" && GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$work/$svc/app" .)
		tar -C "$work/$svc" --numeric-owner --owner=0 --group=0 --mode=0755 -cf "$work/$svc.tar" app
		bash "$REPO/deploy/kube/oci-image.sh" "$IMAGES/$svc-$tag.oci.tar" "docker.io/library/order-system-$svc:$tag" \
			"$work/config.json" "$KUBE_CACHE/standins/distroless.tar" "$work/$svc.tar"
	done
	rm -rf "$work"
}

case ${1:-} in
standins) standins ;;
services) services "${2:-}" ;;
*) echo "usage: images.sh standins | services <tag>" >&2; exit 2 ;;
esac

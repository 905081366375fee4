#!/usr/bin/env bash
# Builds, as OCI archives under $IMAGES, every image a cluster-up needs, without a registry:
#   images.sh standins        the stand-ins for postgres, rabbitmq and the index's nginx
#                             (deploy/standins), the distroless base and the sandbox image;
#                             built once, then reused
#   images.sh services <tag>  order-system-<service>:<tag> from the current sources: the same
#                             static binary, user, layout and entrypoint as deploy/Dockerfile;
#                             and order-system-devidp:<tag>, the development OpenID provider
#                             (tools/devidp) the chart runs with global.auth.devProvider
#   images.sh next <service> <tag> <up.sql> <down.sql>
#                             order-system-<service>:<tag> as a later release would be: the
#                             current sources with one more migration (for the rollback test)
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
		# Built again, with its image, when a file it is made from changed since.
		if [ ! -f "$out/$s.tar" ] || [ -n "$(find "$REPO/deploy/standins" -newer "$out/$s.tar" -print -quit)" ]; then
			bash "$REPO/deploy/standins/build-rootfs.sh" "$s" "$out" >&2
			rm -f "$IMAGES/$s.oci.tar"
		fi
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

# pack <name> <source dir> <work dir> <tag>: builds the Go program in <source dir> (its own
# module, statically) into order-system-<name>:<tag> on the distroless stand-in, with the
# same user, layout and entrypoint as deploy/Dockerfile.
pack() {
	local name=$1 src=$2 work=$3 tag=$4
	mkdir -p "$work/$name"
	echo '{"Entrypoint": ["/app"], "User": "65532:65532", "WorkingDir": "/home/nonroot",
		"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", "HTTP_ADDR=:8080"],
		"ExposedPorts": {"8080/tcp": {}}}' >"$work/config.json"
	(cd "$src" && GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$work/$name/app" .)
	tar -C "$work/$name" --numeric-owner --owner=0 --group=0 --mode=0755 -cf "$work/$name.tar" app
	bash "$REPO/deploy/kube/oci-image.sh" "$IMAGES/$name-$tag.oci.tar" "docker.io/library/order-system-$name:$tag" \
		"$work/config.json" "$KUBE_CACHE/standins/distroless.tar" "$work/$name.tar"
}

services() {
	local tag=${1:?usage: images.sh services <tag>}
	local work=$KUBE_CACHE/src/services
	rm -rf "$work"
	local svc
	local -A src=([user]=services/user/cmd/user [billing]=services/billing/cmd/billing
		[order]=services/order/cmd/order [notification]=services/notification/cmd/notification [devidp]=tools/devidp)
	for svc in user billing order notification devidp; do
		pack "$svc" "$REPO/${src[$svc]}" "$work" "$tag"
	done
	rm -rf "$work"
}

# next: a copy of the service's module and the modules it replaces (pkg, api), with the
# migration added as the version after its last one, built as pack does.
next() {
	local svc=${1:?usage: images.sh next <service> <tag> <up.sql> <down.sql>} tag=${2:?} up=${3:?} down=${4:?}
	local work=$KUBE_CACHE/src/next last version
	rm -rf "$work"
	mkdir -p "$work/tree/services"
	cp -r "$REPO/pkg" "$REPO/api" "$work/tree/"
	cp -r "$REPO/services/$svc" "$work/tree/services/"
	last=$(find "$work/tree/services/$svc/migrations" -name '*.up.sql' -printf '%f\n' | sort | tail -n 1)
	version=$(printf '%06d' $((10#${last%%_*} + 1)))
	cp "$up" "$work/tree/services/$svc/migrations/${version}_next_release.up.sql"
	cp "$down" "$work/tree/services/$svc/migrations/${version}_next_release.down.sql"
	pack "$svc" "$work/tree/services/$svc/cmd/$svc" "$work" "$tag"
	rm -rf "$work"
	echo "$version"
}

case ${1:-} in
standins) standins ;;
services) services "${2:-}" ;;
next) next "${@:2}" ;;
*) echo "usage: images.sh standins | services <tag> | next <service> <tag> <up.sql> <down.sql>" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Packs layers into an OCI image archive that `ctr images import` loads under a name, with no
# registry involved.
#
#   oci-image.sh <out.tar> <name:tag> <config.json> <layer.tar>...
#
# <config.json> is the "config" object of an OCI image configuration (Entrypoint, Cmd, Env,
# User, ...), as deploy/standins/build-rootfs.sh writes it; layers are uncompressed tars,
# the first one at the bottom.
set -euo pipefail
out=${1:?usage: oci-image.sh <out.tar> <name:tag> <config.json> <layer.tar>...}
name=${2:?}
config=${3:?}
shift 3
[ $# -gt 0 ] || { echo "oci-image.sh: no layer" >&2; exit 2; }

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/blobs/sha256"
# blob <file>: stores the file under its digest and prints the digest.
blob() {
	local d
	d=$(sha256sum "$1" | cut -d' ' -f1)
	cp "$1" "$dir/blobs/sha256/$d"
	echo "$d"
}

layers='[]' diffs='[]'
for l in "$@"; do
	d=$(blob "$l")
	layers=$(jq -c --arg d "sha256:$d" --argjson s "$(stat -c %s "$l")" \
		'. + [{mediaType: "application/vnd.oci.image.layer.v1.tar", digest: $d, size: $s}]' <<<"$layers")
	diffs=$(jq -c --arg d "sha256:$d" '. + [$d]' <<<"$diffs")
done
jq -c --argjson diffs "$diffs" '{architecture: "amd64", os: "linux", config: ., rootfs: {type: "layers", diff_ids: $diffs}}' \
	"$config" >"$dir/config.json"
cd_=$(blob "$dir/config.json")
jq -n -c --arg c "sha256:$cd_" --argjson cs "$(stat -c %s "$dir/config.json")" --argjson layers "$layers" \
	'{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
	  config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs}, layers: $layers}' \
	>"$dir/manifest.json"
md=$(blob "$dir/manifest.json")
jq -n -c --arg m "sha256:$md" --argjson ms "$(stat -c %s "$dir/manifest.json")" --arg name "$name" \
	'{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
	  manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m, size: $ms,
	    annotations: {"io.containerd.image.name": $name, "org.opencontainers.image.ref.name": $name}}]}' \
	>"$dir/index.json"
printf '{"imageLayoutVersion": "1.0.0"}\n' >"$dir/oci-layout"
rm -f "$dir/manifest.json" "$dir/config.json"
tar -C "$dir" -cf "$out" oci-layout index.json blobs

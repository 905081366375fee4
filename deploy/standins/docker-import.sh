#!/usr/bin/env bash
# Loads a stand-in built by build-rootfs.sh into a Docker engine ($DOCKER, default docker)
# under one or more image names; the configuration comes from <name>.json.
#
#   deploy/standins/docker-import.sh <out-dir>/<name> <image:tag>... [-- <docker import --change>...]
#
# e.g. docker-import.sh out/postgres postgres:15-alpine
#      docker-import.sh out/golang golang:1.26-bookworm -- 'ENV GOPROXY=http://10.0.0.1:8080'
set -euo pipefail

base=${1:?usage: docker-import.sh <out-dir>/<name> <image:tag>... [-- <change>...]}
shift
tags=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do tags+=("$1"); shift; done
[ $# -gt 0 ] && shift
[ ${#tags[@]} -gt 0 ] || { echo "docker-import.sh: no image name given" >&2; exit 2; }

# Each field of the configuration becomes a Dockerfile-like instruction for --change.
lines=$(jq -r '
	(if .Entrypoint then "ENTRYPOINT \(.Entrypoint | tojson)" else empty end),
	(if .Cmd then "CMD \(.Cmd | tojson)" else empty end),
	(.Env // [] | .[] | "ENV \(split("=")[0])=\(split("=")[1:] | join("="))"),
	(if (.User // "") != "" then "USER \(.User)" else empty end),
	(if .WorkingDir then "WORKDIR \(.WorkingDir)" else empty end),
	(.ExposedPorts // {} | keys[] | "EXPOSE \(.)"),
	(.Volumes // {} | keys[] | "VOLUME \(.)")
	' "$base.json")
changes=()
while IFS= read -r c; do changes+=(--change "$c"); done <<<"$lines"
for c in "$@"; do changes+=(--change "$c"); done

docker=${DOCKER:-docker}
id=$($docker import "${changes[@]}" "$base.tar" "${tags[0]}")
# docker import takes no STOPSIGNAL: one more (empty) layer of the classic builder sets it.
signal=$(jq -r '.StopSignal // empty' "$base.json")
if [ -n "$signal" ]; then
	id=$(printf 'FROM %s\nSTOPSIGNAL %s\n' "$id" "$signal" | DOCKER_BUILDKIT=0 $docker build -q -t "${tags[0]}" -)
fi
for t in "${tags[@]:1}"; do $docker tag "$id" "$t"; done
echo "${tags[*]} <- $base.tar"

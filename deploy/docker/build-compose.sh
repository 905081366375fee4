#!/usr/bin/env bash
# Builds Docker Compose from the Go module proxy into <dir>/docker-compose, once: a binary
# already there is kept. `go install` refuses the module (its go.mod has exclude
# directives), so a throwaway module imports its command and builds it.
#
#   deploy/docker/build-compose.sh <dir> [version]      (default v5.6.0)
set -euo pipefail

dir=${1:?usage: build-compose.sh <dir> [version]}
version=${2:-v5.6.0}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=$dir/docker-compose
if [ -x "$bin" ] && "$bin" version 2>/dev/null | grep -qF "$version"; then
	exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
go mod init compose-build >/dev/null 2>&1
printf 'package main\n\nimport _ "github.com/docker/compose/v5/cmd"\n' >tools.go
go get "github.com/docker/compose/v5/cmd@$version" >get.log 2>&1 || { cat get.log >&2; exit 1; }
. "$repo/scripts/gobuild.sh"
go_build_progress "Docker Compose $version" github.com/docker/compose/v5/cmd \
	-trimpath -ldflags "-s -w -X github.com/docker/compose/v5/internal.Version=$version" -o "$bin.tmp"
mv "$bin.tmp" "$bin"
"$bin" version

#!/usr/bin/env bash
# Builds Jaeger v2 (an OpenTelemetry Collector distribution with Jaeger's storage and query
# service) from the Go module proxy into .cache/jaeger/ (git-ignored), once: a binary already
# there is kept. The system tests start it to read an order's trace back from a real Jaeger
# (tests/system/jaeger_test.go). Prints the binary's path.
#
# The build compiles about two thousand packages: some ten minutes on 2 cores with a cold Go
# build cache, which is why it is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
VERSION=${JAEGER_VERSION:-v1.75.0} # the v2 line of Jaeger is published under v1.x module tags
DIR=$REPO/.cache/jaeger
BIN=$DIR/jaeger-$VERSION

if [ -x "$BIN" ]; then
	echo "$BIN"
	exit 0
fi
. scripts/gobuild.sh
mkdir -p "$DIR"
# A module of its own, outside the repository's workspace, that requires Jaeger's as a tool.
src=$DIR/src-$VERSION
mkdir -p "$src"
cd "$src"
export GOWORK=off GOFLAGS=-mod=mod
[ -f go.mod ] || go mod init jaeger-build >/dev/null 2>&1
echo "fetching Jaeger $VERSION's modules" >&2
go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$VERSION" >get.log 2>&1 || { cat get.log >&2; exit 1; }
go_build_progress "Jaeger $VERSION" github.com/jaegertracing/jaeger/cmd/jaeger -trimpath -ldflags "-s -w" -o "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
echo "$BIN"

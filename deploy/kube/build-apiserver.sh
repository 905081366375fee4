#!/usr/bin/env bash
# Builds a real kube-apiserver from the Go module proxy into $KUBE_CACHE (reused when present).
# k8s.io/kubernetes refers to its staging modules as v0.0.0 with local replaces; a build
# outside its repository replaces each with the matching published release.
set -euo pipefail
VERSION=${KUBE_VERSION:-1.37.2}
KUBE_CACHE=${KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/order-system-kube}
BIN="$KUBE_CACHE/kube-apiserver-v$VERSION"
[ -x "$BIN" ] && { echo "$BIN"; exit 0; }

src="$KUBE_CACHE/src-v$VERSION"
mkdir -p "$src"
cd "$src"
[ -f go.mod ] || go mod init kapi >/dev/null 2>&1
dir=$(go mod download -json "k8s.io/kubernetes@v$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
for m in $(grep -oE 'k8s.io/[a-z0-9-]+ => \./staging' "$dir/go.mod" | awk '{print $1}'); do
	go mod edit -replace="$m=$m@v0.${VERSION#1.}"
done
go mod edit -require="k8s.io/kubernetes@v$VERSION"
cat > main.go <<'GO'
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() { os.Exit(cli.Run(app.NewAPIServerCommand())) }
GO
GOFLAGS=-mod=mod go mod tidy >&2
# Without the version stamp the server reports v0.0.0-master and charts' kubeVersion checks fail.
go build -ldflags "-X k8s.io/component-base/version.gitVersion=v$VERSION" -o "$BIN" . >&2
echo "$BIN"

#!/usr/bin/env bash
# Installs helm into $(go env GOPATH)/bin if it is not on PATH. Debian does not package it;
# the Go module proxy serves its source.
set -euo pipefail
command -v helm >/dev/null && exit 0
GOFLAGS= go install helm.sh/helm/v3/cmd/helm@v3.22.0
echo "helm installed in $(go env GOPATH)/bin"

#!/usr/bin/env bash
# Builds order-system-<service>:latest for the four services (make images). With minikube,
# run `eval $(minikube docker-env)` first so the images land in the cluster's Docker.
set -euo pipefail
cd "$(dirname "$0")/../.."
for svc in user billing order notification; do
	docker build --build-arg SERVICE="$svc" -f deploy/Dockerfile -t "order-system-$svc:${TAG:-latest}" .
done

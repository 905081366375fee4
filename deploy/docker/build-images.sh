#!/usr/bin/env bash
# Builds order-system-<service>:<tag> for the four services (make images); the tag defaults to
# the chart's appVersion, the tag the chart runs by default. With minikube, run
# `eval $(minikube docker-env)` first so the images land in the cluster's Docker.
set -euo pipefail
cd "$(dirname "$0")/../.."
TAG=${TAG:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' deploy/helm/order-system/Chart.yaml)}
for svc in user billing order notification; do
	docker build --build-arg SERVICE="$svc" -f deploy/Dockerfile -t "order-system-$svc:$TAG" .
done

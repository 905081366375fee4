#!/usr/bin/env bash
# Packages the library chart order-system-lib into charts/<subchart>/charts/ of every subchart
# that depends on it (repository: file://../order-system-lib in its Chart.yaml). helm needs the
# package to lint, render or install a subchart on its own; the umbrella chart renders without
# it, but its services' checksum/config hashes their values, the library's among them, so it
# is packaged before every lint, check and install alike. Offline: the dependencies are local
# directories and no repository index is refreshed (--skip-refresh). `dependency update`, not
# `build`: it resolves from Chart.yaml every time, where `build` would trust a Chart.lock left
# over from an older Chart.yaml. The packages and the Chart.lock files are ignored by git.
set -euo pipefail
cd "$(dirname "$0")/order-system"
for chart in charts/*/; do
	grep -q '^dependencies:' "$chart/Chart.yaml" || continue
	helm dependency update --skip-refresh "$chart" >/dev/null
done

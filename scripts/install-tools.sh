#!/usr/bin/env bash
# Installs the named tools when they are missing, so that make run, make e2e and make lint
# need nothing typed by hand: nginx, gcc (the race detector's cgo needs a C compiler), the
# linter shellcheck, chromium (the browser that renders /docs in make e2e), pg_autoctl
# (pg_auto_failover, for the fault tests' PostgreSQL pair), promtool (Prometheus, for the
# alerting rules' tests, the fault test that fires an alert and METRICS=1 make run) and
# prometheus-postgres-exporter (PostgreSQL's exporter, for METRICS=1 make run) from Debian's
# packages, newman from npm.
# Usage: install-tools.sh nginx gcc
set -euo pipefail

. "$(dirname "$0")/lib.sh" # apt_install, quiet, as_root

for tool in "$@"; do
	command -v "$tool" >/dev/null && continue
	case $tool in
	nginx | gcc | shellcheck | chromium | prometheus-postgres-exporter)
		echo "$tool is missing: installing it from Debian's packages (apt-get install $tool)"
		apt_install "$tool"
		;;
	promtool)
		# promtool ships with the Prometheus server. Without its recommendation, the node
		# exporter, which would be one more daemon nobody asked for; the server itself is not
		# started (above) and runs only as make run's child, with METRICS=1, or a fault test's.
		echo "promtool is missing: installing Prometheus from Debian's packages (apt-get install prometheus)"
		apt_install --no-install-recommends prometheus
		;;
	pg_autoctl)
		# The extension for the PostgreSQL the machine has (the newest, if several).
		version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -n | tail -n 1)
		echo "pg_autoctl is missing: installing pg_auto_failover from Debian's packages (pg-auto-failover-cli, postgresql-$version-auto-failover)"
		apt_install pg-auto-failover-cli "postgresql-$version-auto-failover"
		;;
	newman)
		echo "newman is missing: installing it from npm (npm install -g newman)"
		quiet as_root npm install -g --no-fund --no-audit newman
		;;
	*)
		echo "install-tools.sh: do not know how to install $tool" >&2
		exit 2
		;;
	esac
	command -v "$tool" >/dev/null || { echo "$tool is still not on PATH after installing it" >&2; exit 1; }
done

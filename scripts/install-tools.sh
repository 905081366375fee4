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

# Root installs directly; anyone else goes through sudo, which asks when it has to.
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# quiet runs a command keeping its chatter (debconf notes, npm warnings) to show only on failure.
quiet() {
	local out
	out=$(mktemp)
	if ! "$@" >"$out" 2>&1; then
		cat "$out" >&2
		rm -f "$out"
		return 1
	fi
	rm -f "$out"
}

# apt_install installs Debian packages without starting their daemons: a package such as
# nginx would otherwise start a server on port 80 that nobody asked for. The policy file
# that says so is ours only when the machine had none, and goes as soon as the install ends,
# however it ends (an interrupted run included). A package the machine did not have is left
# with its daemon disabled as well (leave_disabled): its maintainer scripts enable it for the
# next boot whatever the policy says. Packages the machine had are not touched. Options for
# apt-get (--no-install-recommends) may come before the packages.
apt_install() {
	local policy=/usr/sbin/policy-rc.d ours="" arg status=0
	local added=() # the named packages the machine does not have yet
	for arg in "$@"; do
		case $arg in
		-*) ;;
		*) [ "$(dpkg-query -W -f='${db:Status-Status}' "$arg" 2>/dev/null)" = installed ] || added+=("$arg") ;;
		esac
	done
	if [ ! -e "$policy" ]; then
		as_root sh -c "printf '#!/bin/sh\\nexit 101\\n' > $policy && chmod 755 $policy"
		ours=1
		trap 'as_root rm -f '"$policy" EXIT
		trap 'exit 130' INT
		trap 'exit 143' TERM
	fi
	# Another apt run on the machine holds the dpkg lock for a while; wait for it rather than fail.
	quiet as_root apt-get -o DPkg::Lock::Timeout=300 update &&
		quiet as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y "$@" || status=$?
	if [ -n "$ours" ]; then
		as_root rm -f "$policy"
		trap - EXIT INT TERM
	fi
	[ "$status" = 0 ] || return "$status"
	for arg in "${added[@]}"; do leave_disabled "$arg"; done
}

# leave_disabled <package>: the package's init scripts and systemd services, which its
# postinst enabled for boot (update-rc.d defaults, deb-systemd-helper enable), disabled again
# as an administrator would, so that an upgrade of the package keeps them disabled: rc links
# that say stop (update-rc.d disable) and no unit links (systemctl disable, on the file
# system as update-rc.d does it, which needs no running systemd). Nothing is stopped: the
# policy above kept them from starting.
leave_disabled() {
	local file name
	while IFS= read -r file; do
		name=${file##*/}
		case $file in
		/etc/init.d/*)
			[ -f "$file" ] || continue
			as_root update-rc.d "$name" disable >/dev/null 2>&1 ||
				echo "install-tools.sh: could not disable the init script $name of $1" >&2
			;;
		/lib/systemd/system/*.service | /usr/lib/systemd/system/*.service)
			command -v systemctl >/dev/null || continue # without systemd, its links start nothing
			as_root systemctl --root=/ --quiet disable "$name" >/dev/null 2>&1 ||
				echo "install-tools.sh: could not disable the systemd service $name of $1" >&2
			;;
		esac
	done < <(dpkg-query -L "$1" 2>/dev/null)
}

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

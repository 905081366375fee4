#!/usr/bin/env bash
# Installs the named tools when they are missing, so that make run, make e2e and make lint
# need nothing typed by hand: nginx, gcc (the race detector's cgo needs a C compiler), the
# linter shellcheck and chromium (the browser that renders /docs in make e2e) from Debian's
# packages, newman from npm. Usage: install-tools.sh nginx gcc
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

for tool in "$@"; do
	command -v "$tool" >/dev/null && continue
	case $tool in
	nginx | gcc | shellcheck | chromium)
		echo "$tool is missing: installing it from Debian's packages (apt-get install $tool)"
		# Another apt run on the machine holds the dpkg lock for a while; wait for it rather than fail.
		quiet as_root apt-get -o DPkg::Lock::Timeout=300 update
		quiet as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y "$tool"
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

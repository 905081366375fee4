# shellcheck shell=bash
# The one shell library of this repository, sourced by its scripts (bash). The scripts are
# glue: what they share is here, once.
#
#   log <words>                 a line with the time, on stdout
#   step <words>                a heading line with the seconds since the script started
#   die <words>                 the reason on stderr, then exit 1
#   wait_for <seconds> <what> <command...>
#                               runs the command every 0.2 s until it succeeds; fails saying
#                               what did not happen after that many seconds
#   as_root <command...>        the command as root (sudo when not root already)
#   quiet <command...>          the command with its output shown only when it fails
#   apt_install [apt options] <package...>
#                               Debian packages, their daemons neither started nor enabled
#   pid_record <file> <pid>     a pid file that names its process: "<pid> <start time>"
#   pid_live <file>             prints the pid when that very process still runs; fails otherwise
#   start_bg <pid file> <log file> <command...>
#                               the command in the background, in a session of its own, its
#                               output appended to the log, its pid file recorded
#   stop_pid <pid file> [seconds]
#                               SIGTERM to the process the file names, SIGKILL after the
#                               seconds (20), the file removed; only that very process

# --- messages ---------------------------------------------------------------------------

log() { printf '%s %s\n' "$(date +%T)" "$*"; }
step() { log "== $* (${SECONDS}s)"; }
die() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}

wait_for() {
	local seconds=$1 what=$2 deadline
	shift 2
	deadline=$((SECONDS + seconds))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			printf '%s: not after %d s\n' "$what" "$seconds" >&2
			return 1
		fi
		sleep 0.2
	done
}

# --- installing -------------------------------------------------------------------------

# Root installs directly; anyone else goes through sudo, which asks when it has to.
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

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
# nginx would otherwise start a server on port 80 that nobody asked for, docker.io a system
# engine. The policy file that says so is ours only when the machine had none, and goes as
# soon as the install ends, however it ends (an interrupted run included). A package the
# machine did not have is left with its daemon disabled as well (leave_disabled): its
# maintainer scripts enable it for the next boot whatever the policy says. Packages the
# machine had are not touched. Options for apt-get (--no-install-recommends) may come before
# the packages.
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
				echo "apt_install: could not disable the init script $name of $1" >&2
			;;
		/lib/systemd/system/*.service | /usr/lib/systemd/system/*.service)
			command -v systemctl >/dev/null || continue # without systemd, its links start nothing
			as_root systemctl --root=/ --quiet disable "$name" >/dev/null 2>&1 ||
				echo "apt_install: could not disable the systemd service $name of $1" >&2
			;;
		esac
	done < <(dpkg-query -L "$1" 2>/dev/null)
}

# --- processes --------------------------------------------------------------------------
# A pid file names its process exactly: the pid and the process's start time (field 22 of
# /proc/<pid>/stat, clock ticks since boot). A pid file that outlived its process (a crash, a
# reboot) then never gets an unrelated process that was given the same pid signalled.

# pid_starttime <pid>: the process's start time, or failure when there is no such process.
pid_starttime() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	# The command name, in parentheses, may hold spaces: count the fields after it.
	stat=${stat##*) }
	# shellcheck disable=SC2086 # split into the fields on purpose
	set -- $stat
	[ -n "${20:-}" ] && echo "${20}"
}

pid_record() {
	local start
	start=$(pid_starttime "$2") || start=gone
	echo "$2 $start" >"$1"
}

pid_live() {
	local pid start now
	[ -s "$1" ] || return 1
	read -r pid start <"$1" || [ -n "$pid" ] || return 1
	now=$(pid_starttime "$pid") || return 1
	[ -n "$start" ] && [ "$now" = "$start" ] && echo "$pid"
}

# In a session of its own, so that no terminal's signals reach it. (setsid forks only when
# the caller is a process group leader, which a script's background job is not: $! is the
# program's own pid.)
start_bg() {
	local pidfile=$1 logfile=$2
	shift 2
	setsid "$@" >>"$logfile" 2>&1 </dev/null &
	pid_record "$pidfile" $!
}

stop_pid() {
	local file=$1 grace=${2:-20} pid deadline
	if pid=$(pid_live "$file") && kill -TERM "$pid" 2>/dev/null; then
		deadline=$((SECONDS + grace))
		while pid_live "$file" >/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
		if pid=$(pid_live "$file"); then kill -KILL "$pid" 2>/dev/null || true; fi
	fi
	rm -f "$file"
}

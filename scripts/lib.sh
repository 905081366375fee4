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
#   host_snapshot <dir> <sysctl...>
#   host_diff <dir> <sysctl...>  the host state this repository's scripts may change (see below),
#                               written to <dir>, and later compared with it
#   host_restore <dir> <chain ERE> <string...>
#                               removes what was added since the snapshot in <dir> and is
#                               ours: the iptables and ip6tables chains whose names match the
#                               ERE, the rules in or to them and the rules holding one of the
#                               strings; puts the snapshot's sysctls back. What else was added
#                               is left, for host_diff to report.

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
# soon as the install ends, however it ends (an interrupted run included). Every package the
# install added, the named ones and their dependencies (nginx's daemon is nginx-common's), is
# left with its daemon disabled as well (leave_disabled): their maintainer scripts enable it
# for the next boot whatever the policy says. Packages the machine had are not touched.
# Options for apt-get (--no-install-recommends) may come before the packages.
apt_install() {
	local policy=/usr/sbin/policy-rc.d ours="" pkg status=0 before
	before=$(installed_packages)
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
	# Disabled even when the install failed half-way: what it added may be configured already.
	for pkg in $(LC_ALL=C comm -13 <(echo "$before") <(installed_packages)); do leave_disabled "$pkg"; done
	return "$status"
}

installed_packages() { dpkg-query -W -f='${db:Status-Status} ${Package}\n' 2>/dev/null | awk '$1 == "installed" {print $2}' | LC_ALL=C sort -u; }

# leave_disabled <package>: the package's init scripts and systemd units, which its
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
		# Sockets, timers and paths start their service too (docker.socket starts dockerd
		# on the first connection to /var/run/docker.sock).
		/lib/systemd/system/*.service | /usr/lib/systemd/system/*.service | /lib/systemd/system/*.socket | /usr/lib/systemd/system/*.socket | \
			/lib/systemd/system/*.timer | /usr/lib/systemd/system/*.timer | /lib/systemd/system/*.path | /usr/lib/systemd/system/*.path)
			command -v systemctl >/dev/null || continue # without systemd, its links start nothing
			as_root systemctl --root=/ --quiet disable "$name" >/dev/null 2>&1 ||
				echo "apt_install: could not disable the systemd unit $name of $1" >&2
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

# --- the host's state -------------------------------------------------------------------
# What the cluster and the Compose test's engine may change on the machine, each as a sorted
# file under <dir>: the named sysctls, every iptables and ip6tables chain and rule (by
# table), links, IPv4 and IPv6 routes, mounts, network namespaces, the container runtimes'
# cgroups, and the entries of
# the folders where container runtimes and CNI plugins leave state. host_diff prints what
# differs from the snapshot in <dir>, one "<part>: <line>" per difference, and fails when
# anything does.

HOST_FOLDERS="/run/netns /var/run/netns /var/lib/cni /var/lib/cni/results /var/lib/cni/networks /run/containerd /run/containerd/s /var/run/containerd /var/log/pods /var/log/containers /etc/cni/net.d /var/lib/kubelet /var/lib/kubelet/device-plugins /run/docker /var/run/docker"

# Every part succeeds whatever the machine lacks (a table, IPv6, a folder): the callers run
# under set -e and pipefail.
host_state() { # <part> <sysctl...>: one part of the state, sorted
	local part=$1 t s d
	shift
	case $part in
	sysctl) for s in "$@"; do printf '%s %s\n' "$s" "$(sysctl -n "$s" 2>/dev/null || echo -)"; done ;;
	iptables | ip6tables)
		if command -v "$part" >/dev/null; then
			for t in filter nat mangle raw; do
				{ "$part" -t "$t" -S 2>/dev/null || true; } | sed "s/^/$t /"
			done
		fi
		;;
	links) ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 ;;
	# A route learnt from router advertisements counts its lifetime down: not a change.
	routes) { ip -4 route show table all || true; ip -6 route show table all || true; } 2>/dev/null | sed 's/ expires [0-9]*sec//' ;;
	mounts) awk '{print $5}' /proc/self/mountinfo ;;
	# The cgroups a kubelet, containerd or dockerd creates, in every hierarchy (v1) or the one
	# (v2): the machine's others come and go with its own processes.
	cgroups) { find /sys/fs/cgroup -maxdepth 2 -type d \( -name 'kubepods*' -o -name k8s.io -o -name docker -o -name 'order-system*' \) 2>/dev/null || true; } ;;
	folders)
		for d in $HOST_FOLDERS; do
			if [ -d "$d" ]; then find "$d" -maxdepth 1 -mindepth 0 2>/dev/null || true; fi
		done | sort -u
		;;
	esac | LC_ALL=C sort
}

HOST_PARTS="sysctl iptables ip6tables links routes mounts cgroups folders"

# range_free <cidr...>: fails, naming the routes, when a route of the host (in any table) lies
# within one of the ranges or holds it, a default route aside. Before the scripts give
# addresses of a range to a bridge: addresses the host already reaches another way would be
# shadowed, and the egress guard, which drops what leaves by the uplink, would not cover them.
range_free() {
	local cidr taken=0 routes
	for cidr in "$@"; do
		routes=$({ ip -4 route show table all root "$cidr"; ip -4 route show table all match "$cidr"; } 2>&1 |
			grep -Ev '^([a-z]+ )?default( |$)' | sort -u || true)
		if [ -n "$routes" ]; then
			echo "the range $cidr is in use on this host:" >&2
			echo "$routes" >&2
			taken=1
		fi
	done
	return $taken
}

host_snapshot() { # <dir> <sysctl...>; <dir>/complete is written last
	local dir=$1 part
	shift
	mkdir -p "$dir"
	for part in $HOST_PARTS; do host_state "$part" "$@" >"$dir/$part"; done
	touch "$dir/complete"
}

# A sysctl the machine did not have before (a kernel module loaded since, such as nf_conntrack
# or br_netfilter) is not compared: modules stay loaded.
host_diff() { # <dir> <sysctl...>
	local dir=$1 part differ=0 line
	shift
	for part in $HOST_PARTS; do
		while IFS= read -r line; do
			printf '%s: %s\n' "$part" "$line"
			differ=1
		done < <(if [ "$part" = sysctl ]; then
			# shellcheck disable=SC2046 # one word per sysctl
			diff <(grep -v ' -$' "$dir/sysctl") <(host_state sysctl $(awk '$2 != "-" {print $1}' "$dir/sysctl"))
		else
			diff "$dir/$part" <(host_state "$part" "$@")
		fi | grep '^[<>]' || true)
	done
	return "$differ"
}

host_restore() { # <dir> <chain ERE> <string...>
	local dir=$1 chains=$2 ipt table rule chain added ours
	shift 2
	for ipt in iptables ip6tables; do
		command -v "$ipt" >/dev/null || continue
		added=$(LC_ALL=C comm -13 "$dir/$ipt" <(host_state "$ipt"))
		# "table chain" for each chain of ours: a name may be in several tables.
		ours=$(awk -v re="$chains" '$2 == "-N" && $3 ~ re {print $1, $3}' <<<"$added")
		# The rules in or to those chains, or holding one of the strings; then the chains.
		while read -r table _ rule; do
			eval "$ipt -t $table -D $rule" 2>/dev/null || true
		done < <(awk -v chains="$ours" -v strings="$(printf '%s\037' "$@")" '
			BEGIN {
				n = split(chains, c, "\n"); for (i = 1; i <= n; i++) { split(c[i], tc, " "); mine[tc[1] " " tc[2]] = 1 }
				m = split(strings, s, "\037")
			}
			$2 == "-A" {
				keep = ($1 " " $3) in mine
				for (i = 4; i < NF; i++) if (($i == "-j" || $i == "-g") && (($1 " " $(i + 1)) in mine)) keep = 1
				for (j = 1; j <= m; j++) if (s[j] != "" && index($0, s[j])) keep = 1
				if (keep) print
			}' <<<"$added")
		while read -r table chain; do [ -z "$chain" ] || "$ipt" -t "$table" -F "$chain" 2>/dev/null || true; done <<<"$ours"
		while read -r table chain; do [ -z "$chain" ] || "$ipt" -t "$table" -X "$chain" 2>/dev/null || true; done <<<"$ours"
	done
	host_restore_sysctls "$dir"
}

# host_restore_sysctls <dir>: the sysctls of the snapshot in <dir> back to their values there
# (one the machine did not have then is left as it is).
host_restore_sysctls() {
	local name value
	while read -r name value; do
		[ "$value" = - ] || [ "$(sysctl -n "$name" 2>/dev/null)" = "$value" ] || sysctl -qw "$name=$value" >/dev/null 2>&1 || true
	done <"$1/sysctl"
}

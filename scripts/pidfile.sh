# shellcheck shell=bash
# Sourced by the scripts that start processes in the background and stop them later. A pid
# file names its process exactly: the pid and the process's start time (field 22 of
# /proc/<pid>/stat, clock ticks since boot). A pid file that outlived its process (a crash, a
# reboot) then never gets an unrelated process that was given the same pid signalled.
#   pid_record <file> <pid>   writes "<pid> <start time>"
#   pid_live <file>           prints the pid when its process still runs; fails otherwise

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

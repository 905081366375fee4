# shellcheck shell=bash
# Sourced by the scripts that change the host's network (the one-node cluster, the Compose
# test's engine): they hold the lock $NET_LOCK from their first change to their last clean-up,
# so that each can tell its own bridges and chains from another's. The lock is held by a
# process of its own, so that no other child inherits its descriptor and keeps it after the
# script is gone. Needs lib.sh.
#   netlock_take <pid-file>      starts the holder once it has the lock; waits at most
#                                NET_LOCK_WAIT seconds (1800), then says who holds it
#   netlock_release <pid-file>   stops the holder
#   netlock_holders              the processes that hold or wait for the lock

NET_LOCK=${NET_LOCK:-/tmp/os-net.lock}

netlock_take() {
	local pidfile=$1 wait=${NET_LOCK_WAIT:-1800} waiter taker=$BASHPID
	# Once flock has the lock, the holder first checks that flock's parent is still this
	# shell: a script killed while it waited (Ctrl-C) has nobody left to release the lock, so
	# the holder then exits and frees it. (A dead parent's child is re-parented, so a reused
	# pid cannot pass the check.)
	# shellcheck disable=SC2016 # expanded by the holder's shell
	LOCK_PID_FILE=$pidfile TAKER=$taker setsid flock "$NET_LOCK" sh -c '
		[ "$(ps -o ppid= -p "$PPID" | tr -d " ")" = "$TAKER" ] || exit 0
		echo $$ >"$LOCK_PID_FILE"
		exec sleep infinity' </dev/null >/dev/null 2>&1 &
	waiter=$!
	for ((i = 0; i < wait; i++)); do
		[ -s "$pidfile" ] && break
		sleep 1
	done
	if ! [ -s "$pidfile" ]; then
		kill "$waiter" 2>/dev/null # it must not take the lock later, with nobody to release it
		echo "could not take $NET_LOCK in $wait s; it is held by: $(netlock_holders)" >&2
		return 1
	fi
	pid_record "$pidfile" "$(cat "$pidfile")" # the holder's start time beside its pid
}

netlock_release() {
	local pid
	if pid=$(pid_live "$1"); then kill "$pid"; fi
	rm -f "$1"
}

netlock_holders() {
	lslocks -n -o PID,COMMAND,PATH 2>/dev/null | awk -v p="$NET_LOCK" '$3 == p { printf "%s (pid %s) ", $2, $1 }'
}

# shellcheck shell=bash
# Sourced by the scripts that build large programs from the Go module proxy (Kubernetes,
# CoreDNS, Docker Compose), which take minutes on a cold build cache and would otherwise be
# silent for all of them.
#   go_build_progress <what> <package> [go build flags...]
# runs go build with -v, which names each package as it compiles it, and every 30 s prints to
# stderr how many it has compiled, of how many the program depends on (the part already in
# the build cache is not compiled again), and for how long. On failure it shows the compiler's
# messages.
go_build_progress() {
	local what=$1 pkg=$2 log total pid status=0 start=$SECONDS last=$SECONDS
	shift 2
	log=$(mktemp)
	total=$(go list -deps "$pkg" 2>/dev/null | wc -l) || total="?"
	go build -v "$@" "$pkg" 2>"$log" &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		sleep 1
		if ((SECONDS - last >= 30)); then
			last=$SECONDS
			printf 'building %s: %d packages compiled of the %s it depends on, %ds so far\n' \
				"$what" "$(compiled "$log")" "$total" $((SECONDS - start)) >&2
		fi
	done
	wait "$pid" || status=$?
	if [ "$status" -ne 0 ]; then
		grep -v '^[^ ]*$' "$log" >&2 || cat "$log" >&2
	else
		printf 'built %s: %d packages compiled in %ds\n' "$what" "$(compiled "$log")" $((SECONDS - start)) >&2
	fi
	rm -f "$log"
	return "$status"
}

# compiled <log>: the package names go build -v has written (its other lines have spaces).
compiled() { grep -c '^[^ ]*$' "$1" || true; }

#!/bin/sh
# Entrypoint of the postgres stand-in, honouring the official image's environment: on an
# empty $PGDATA it creates the cluster with POSTGRES_USER (postgres) / POSTGRES_PASSWORD,
# creates POSTGRES_DB, runs /docker-entrypoint-initdb.d/*.sql, *.sql.gz and *.sh against it,
# and opens the network with POSTGRES_HOST_AUTH_METHOD (scram-sha-256). Started as root it
# prepares the folders and continues as postgres; started as postgres it does the rest.
set -eu

if [ "${1#-}" != "$1" ]; then set -- postgres "$@"; fi
[ "$1" = postgres ] || exec "$@"

PGDATA=${PGDATA:-/var/lib/postgresql/data}
export PGDATA

if [ "$(id -u)" = 0 ]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chown postgres:postgres "$PGDATA" /var/run/postgresql
	chmod 700 "$PGDATA"
	exec /usr/bin/setpriv --reuid=postgres --regid=postgres --clear-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	user=${POSTGRES_USER:-postgres}
	db=${POSTGRES_DB:-$user}
	auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
		echo "postgres: POSTGRES_PASSWORD is not set (or set POSTGRES_HOST_AUTH_METHOD=trust)" >&2
		exit 1
	fi
	mkdir -p "$PGDATA"
	chmod 700 "$PGDATA"
	pwfile=$(mktemp)
	printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
	# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words, as in the image
	initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host="$auth" \
		--encoding=UTF8 --locale=C ${POSTGRES_INITDB_ARGS:-}
	rm -f "$pwfile"
	printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
	printf 'host all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"

	# The init scripts run against a server reachable only through its socket.
	pg_ctl -w -o "-c listen_addresses=''" start
	export PGUSER="$user"
	if [ "$db" != postgres ]; then
		echo 'CREATE DATABASE :"db";' | psql -v ON_ERROR_STOP=1 --no-psqlrc -d postgres -v db="$db"
	fi
	for f in /docker-entrypoint-initdb.d/*; do
		case $f in
		*.sh)
			echo "postgres: running $f"
			# shellcheck source=/dev/null # the init scripts are the image user's
			if [ -x "$f" ]; then "$f"; else . "$f"; fi
			;;
		*.sql) echo "postgres: running $f"; psql -v ON_ERROR_STOP=1 --no-psqlrc -d "$db" -f "$f" ;;
		*.sql.gz) echo "postgres: running $f"; gunzip -c "$f" | psql -v ON_ERROR_STOP=1 --no-psqlrc -d "$db" ;;
		*) ;;
		esac
	done
	unset PGUSER
	pg_ctl -w -m fast stop
	echo "postgres: init process complete"
fi

exec "$@"

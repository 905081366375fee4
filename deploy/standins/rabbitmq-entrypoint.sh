#!/bin/sh
# Entrypoint of the rabbitmq stand-in, honouring the official image's environment:
# RABBITMQ_DEFAULT_USER, RABBITMQ_DEFAULT_PASS and RABBITMQ_DEFAULT_VHOST become the
# default user and vhost (guest/guest and / otherwise). Started as root it prepares the
# folders and continues as rabbitmq; started as rabbitmq it does the rest.
set -eu

if [ "$(id -u)" = 0 ]; then
	mkdir -p /var/lib/rabbitmq
	chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /etc/rabbitmq
	exec /usr/bin/setpriv --reuid=rabbitmq --regid=rabbitmq --clear-groups "$0" "$@"
fi

conf=/etc/rabbitmq/conf.d/20-environment.conf
: >"$conf"
[ -z "${RABBITMQ_DEFAULT_USER:-}" ] || printf 'default_user = %s\n' "$RABBITMQ_DEFAULT_USER" >>"$conf"
[ -z "${RABBITMQ_DEFAULT_PASS:-}" ] || printf 'default_pass = %s\n' "$RABBITMQ_DEFAULT_PASS" >>"$conf"
[ -z "${RABBITMQ_DEFAULT_VHOST:-}" ] || printf 'default_vhost = %s\n' "$RABBITMQ_DEFAULT_VHOST" >>"$conf"
exec "$@"

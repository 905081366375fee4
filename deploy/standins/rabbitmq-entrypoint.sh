#!/bin/sh
# Entrypoint of the rabbitmq stand-in, as the official image's: the server itself reads
# RABBITMQ_DEFAULT_USER, RABBITMQ_DEFAULT_PASS and RABBITMQ_DEFAULT_VHOST (guest/guest and /
# otherwise), so it writes no file and the root filesystem may be read-only (with writable
# /var/lib/rabbitmq, /var/log/rabbitmq and /tmp). Started as root it prepares the first and
# continues as rabbitmq.
set -eu

if [ "$(id -u)" = 0 ]; then
	mkdir -p /var/lib/rabbitmq
	chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
	exec /usr/bin/setpriv --reuid=rabbitmq --regid=rabbitmq --clear-groups "$0" "$@"
fi
exec "$@"

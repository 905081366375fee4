#!/usr/bin/env bash
# Builds the root file system of a local stand-in for a public image that cannot be pulled
# on an offline machine. A stand-in is made of Debian's packages of this machine (their
# binaries, the libraries ldd lists, busybox-static for a shell and the usual tools) and
# honours the documented interface of the image it stands in for; it is Debian's version
# of the software (PostgreSQL 15, RabbitMQ 3.10, nginx 1.22), not the image's own.
#
#   deploy/standins/build-rootfs.sh <name> <out-dir>
#
# <name>                stands in for                       entrypoint / notes
#   postgres            postgres:15-alpine                  POSTGRES_USER/PASSWORD/DB, PGDATA,
#                                                           POSTGRES_HOST_AUTH_METHOD, POSTGRES_INITDB_ARGS,
#                                                           /docker-entrypoint-initdb.d/*.sql|*.sql.gz|*.sh;
#                                                           user postgres 70:70
#   rabbitmq            rabbitmq:3.13-management-alpine     RABBITMQ_DEFAULT_USER/PASS/VHOST, management
#                                                           plugin on 15672; user rabbitmq 100:101
#   nginx               nginx:1.27-alpine                   /etc/nginx/conf.d/*.conf, default listens on 80
#   nginx-unprivileged  nginxinc/nginx-unprivileged:*       the same, runs as 101:101, default on 8080
#   golang              golang:1.26-bookworm                this machine's Go toolchain in /usr/local/go
#   distroless          gcr.io/distroless/static-debian12   /etc/passwd (nonroot 65532), CA certificates,
#                                                           time zones; nothing else
#
# Writes:
#   <out-dir>/<name>.tar   the root file system (uncompressed tar, numeric owners), one layer
#   <out-dir>/<name>.json  its image configuration, in the shape of the "config" object of an
#                          OCI image configuration: Entrypoint, Cmd, Env, User, WorkingDir,
#                          ExposedPorts, Volumes, StopSignal
# deploy/standins/docker-import.sh loads the pair into a Docker engine under any names.
# The postgres, rabbitmq and nginx processes start as root and drop to their user (as the
# images do), or start as that user directly (a Kubernetes securityContext).
#
# Needs root (file owners), apt-get (nginx and busybox-static are downloaded, not installed)
# and the installed postgresql-15, rabbitmq-server and Go.
set -euo pipefail

name=${1:?usage: build-rootfs.sh <name> <out-dir>}
out=${2:?usage: build-rootfs.sh <name> <out-dir>}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
root=$out/$name.rootfs
rm -rf "$root"
mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,usr/lib64,usr/local/bin,etc,tmp,root,dev,proc,sys,run,var/tmp}
# A merged /usr like Debian's: ldd paths under /lib and /usr/lib both land in usr/lib.
for d in bin sbin lib lib64; do ln -s usr/$d "$root/$d"; done
chmod 1777 "$root/tmp" "$root/var/tmp"

# debs are fetched once per out-dir and only unpacked; nothing is installed on the machine.
deb_root() { # <package>: prints a folder holding the package's files
	local pkg=$1 dir=$out/.debs/$1
	if [ ! -d "$dir" ]; then
		mkdir -p "$out/.debs"
		(cd "$out/.debs" && rm -f "${pkg}"_*.deb && { apt-get download -qq "$pkg" 2>/dev/null || { apt-get update -qq && apt-get download -qq "$pkg"; }; }) >&2
		dpkg-deb -x "$out"/.debs/"${pkg}"_*.deb "$dir.tmp" && mv "$dir.tmp" "$dir"
	fi
	echo "$dir"
}

# copy <src> <dest-in-root>: one file, symlinks followed.
copy() { mkdir -p "$root$(dirname "$2")" && cp -L "$1" "$root$2"; }

# libs <file>...: the shared libraries each ELF file needs, at the paths ldd reports.
libs() {
	local f lib
	for f in "$@"; do
		ldd "$f" 2>/dev/null | grep -q 'not found' && { echo "missing libraries of $f:" >&2; ldd "$f" >&2; exit 1; }
		for lib in $(ldd "$f" 2>/dev/null | grep -oE '/[^ ]+' || true); do
			[ -e "$root$lib" ] || copy "$lib" "$lib"
		done
	done
}

# tree <src-dir> <dest-dir>: a folder as it is, then the libraries of the ELF files in it.
tree() {
	mkdir -p "$root$2"
	tar -C "$1" -cf - . | tar -C "$root$2" -xf -
	local f
	while IFS= read -r f; do
		if [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ]; then libs "$f"; fi
	done < <(find "$root$2" -type f \( -perm -u+x -o -name '*.so*' \))
}

busybox() {
	local bb
	bb=$(deb_root busybox-static)/bin/busybox
	copy "$bb" /usr/bin/busybox
	# util-linux's setpriv: busybox's cannot change the user, which the entrypoints do (by
	# its full path: busybox's shell prefers its own applets to PATH).
	copy /usr/bin/setpriv /usr/bin/setpriv
	libs /usr/bin/setpriv
	local a
	for a in $("$bb" --list); do
		[ -e "$root/usr/bin/$a" ] || [ -e "$root/usr/sbin/$a" ] || ln -s busybox "$root/usr/bin/$a"
	done
}

certs_and_zones() {
	copy /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
	mkdir -p "$root/usr/share"
	cp -a /usr/share/zoneinfo "$root/usr/share/zoneinfo"
}

# account <user> <uid> <group> <gid> <home>
account() {
	[ -f "$root/etc/passwd" ] || printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
	[ -f "$root/etc/group" ] || printf 'root:x:0:\n' >"$root/etc/group"
	grep -q "^$3:" "$root/etc/group" || printf '%s:x:%s:\n' "$3" "$4" >>"$root/etc/group"
	printf '%s:x:%s:%s:%s:%s:/sbin/nologin\n' "$1" "$2" "$4" "$1" "$5" >>"$root/etc/passwd"
}

# config <json>: the image configuration, written as given.
config() { printf '%s\n' "$1" | jq . >"$out/$name.json"; }

PATH_ENV=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

case $name in
postgres)
	pg=/usr/lib/postgresql/15
	busybox
	certs_and_zones
	account postgres 70 postgres 70 /var/lib/postgresql
	# The JIT (LLVM, 100 MB) is left out: postgres runs without it when it is missing.
	mkdir -p "$root$pg"
	tree "$pg/bin" "$pg/bin"
	(cd "$pg/lib" && tar --exclude='llvmjit*' --exclude=bitcode -cf - .) | (mkdir -p "$root$pg/lib" && tar -C "$root$pg/lib" -xf -)
	while IFS= read -r f; do libs "$f"; done < <(find "$root$pg/lib" -name '*.so')
	tree /usr/share/postgresql/15 /usr/share/postgresql/15
	for b in postgres initdb pg_ctl pg_isready psql pg_dump pg_restore createdb createuser; do
		ln -s "$pg/bin/$b" "$root/usr/local/bin/$b"
	done
	install -m 0755 "$here/postgres-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
	mkdir -p "$root/docker-entrypoint-initdb.d" "$root/var/lib/postgresql/data" "$root/var/run/postgresql"
	chown -R 70:70 "$root/var/lib/postgresql" "$root/var/run/postgresql"
	chmod 3777 "$root/var/run/postgresql"
	config '{"Entrypoint": ["docker-entrypoint.sh"], "Cmd": ["postgres"],
		"Env": ["PATH='"$PATH_ENV"'", "PGDATA=/var/lib/postgresql/data", "LANG=C.UTF-8"],
		"ExposedPorts": {"5432/tcp": {}}, "Volumes": {"/var/lib/postgresql/data": {}},
		"WorkingDir": "/", "StopSignal": "SIGINT"}'
	;;
rabbitmq)
	busybox
	certs_and_zones
	account rabbitmq 100 rabbitmq 101 /var/lib/rabbitmq
	tree /usr/lib/erlang /usr/lib/erlang
	# On PATH as they are: the scripts find each other by their own folder, not by links.
	tree /usr/lib/rabbitmq /usr/lib/rabbitmq
	install -m 0755 "$here/rabbitmq-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
	# Configuration the entrypoint completes from the environment, so it is the user's.
	mkdir -p "$root/etc/rabbitmq/conf.d" "$root/var/lib/rabbitmq" "$root/var/log/rabbitmq"
	printf '%s\n' 'loopback_users.guest = false' 'listeners.tcp.default = 5672' \
		'management.tcp.port = 15672' 'log.console = true' 'log.console.level = info' 'log.file = false' \
		>"$root/etc/rabbitmq/conf.d/10-defaults.conf"
	printf '[rabbitmq_management,rabbitmq_prometheus].\n' >"$root/etc/rabbitmq/enabled_plugins"
	chown -R 100:101 "$root/etc/rabbitmq" "$root/var/lib/rabbitmq" "$root/var/log/rabbitmq"
	config '{"Entrypoint": ["docker-entrypoint.sh"], "Cmd": ["rabbitmq-server"],
		"Env": ["PATH=/usr/lib/rabbitmq/bin:/usr/lib/erlang/bin:'"$PATH_ENV"'", "HOME=/var/lib/rabbitmq", "LANG=C.UTF-8",
			"RABBITMQ_DATA_DIR=/var/lib/rabbitmq", "RABBITMQ_LOGS=-"],
		"ExposedPorts": {"4369/tcp": {}, "5672/tcp": {}, "15672/tcp": {}, "15692/tcp": {}, "25672/tcp": {}},
		"Volumes": {"/var/lib/rabbitmq": {}}, "WorkingDir": "/", "StopSignal": "SIGTERM"}'
	;;
nginx | nginx-unprivileged)
	busybox
	certs_and_zones
	account nginx 101 nginx 101 /var/cache/nginx
	ngx=$(deb_root nginx)
	copy "$ngx/usr/sbin/nginx" /usr/sbin/nginx
	libs "$ngx/usr/sbin/nginx"
	copy "$(deb_root nginx-common)/etc/nginx/mime.types" /etc/nginx/mime.types
	mkdir -p "$root/etc/nginx/conf.d" "$root/var/log/nginx" "$root/var/cache/nginx" "$root/var/lib/nginx" "$root/usr/share/nginx/html"
	ln -s /dev/stdout "$root/var/log/nginx/access.log"
	ln -s /dev/stderr "$root/var/log/nginx/error.log"
	# Every path nginx writes is under /tmp, so it runs as root or as any user; `user` is
	# ignored with a notice when the master is not root.
	cat >"$root/etc/nginx/nginx.conf" <<-'CONF'
	user nginx;
	worker_processes auto;
	error_log /dev/stderr notice;
	pid /tmp/nginx.pid;
	events { worker_connections 1024; }
	http {
	    include /etc/nginx/mime.types;
	    default_type application/octet-stream;
	    access_log /dev/stdout;
	    client_body_temp_path /tmp/client_temp;
	    proxy_temp_path /tmp/proxy_temp;
	    fastcgi_temp_path /tmp/fastcgi_temp;
	    uwsgi_temp_path /tmp/uwsgi_temp;
	    scgi_temp_path /tmp/scgi_temp;
	    sendfile on;
	    keepalive_timeout 65;
	    include /etc/nginx/conf.d/*.conf;
	}
	CONF
	port=80 user=
	[ "$name" = nginx-unprivileged ] && port=8080 user=101:101
	printf 'server {\n    listen %s;\n    location / { root /usr/share/nginx/html; index index.html; }\n}\n' "$port" \
		>"$root/etc/nginx/conf.d/default.conf"
	printf '<!doctype html><title>nginx stand-in</title><p>nginx stand-in\n' >"$root/usr/share/nginx/html/index.html"
	chown -R 101:101 "$root/var/cache/nginx" "$root/etc/nginx/conf.d"
	config '{"Cmd": ["nginx", "-g", "daemon off;"], "Env": ["PATH='"$PATH_ENV"'"], "User": "'"$user"'",
		"ExposedPorts": {"'"$port"'/tcp": {}}, "WorkingDir": "/", "StopSignal": "SIGQUIT"}'
	;;
golang)
	busybox
	certs_and_zones
	goroot=$(go env GOROOT)
	mkdir -p "$root/usr/local/go" "$root/go/bin" "$root/go/src"
	chmod -R 1777 "$root/go"
	# Sources and tools of the toolchain; its own tests and docs are left out.
	(cd "$goroot" && tar --exclude=./test --exclude=./doc --exclude=./api --exclude=./misc \
		--exclude=testdata --exclude='*_test.go' -cf - .) | tar -C "$root/usr/local/go" -xf -
	libs "$root/usr/local/go/bin/go"
	version=$("$goroot/bin/go" env GOVERSION)
	config '{"Cmd": ["bash"], "Env": ["PATH=/go/bin:/usr/local/go/bin:'"$PATH_ENV"'",
		"GOLANG_VERSION='"${version#go}"'", "GOTOOLCHAIN=local", "GOPATH=/go"], "WorkingDir": "/go"}'
	# bash of the real image: busybox's ash answers to the name.
	ln -s busybox "$root/usr/bin/bash"
	;;
distroless)
	certs_and_zones
	rm -f "$root"/{bin,sbin,lib64} && rmdir "$root/usr/bin" "$root/usr/sbin" "$root/usr/lib64" "$root/usr/local/bin"
	printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
		'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$root/etc/passwd"
	printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'tty:x:5:' 'staff:x:50:' 'nonroot:x:65532:' >"$root/etc/group"
	mkdir -p "$root/home/nonroot" && chown 65532:65532 "$root/home/nonroot" && chmod 700 "$root/root"
	config '{"Env": ["PATH='"$PATH_ENV"'", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
		"User": "65532", "WorkingDir": "/home/nonroot"}'
	;;
*)
	echo "unknown stand-in $name (postgres, rabbitmq, nginx, nginx-unprivileged, golang, distroless)" >&2
	exit 2
	;;
esac

tar -C "$root" --numeric-owner -cf "$out/$name.tar" .
rm -rf "$root"
echo "$out/$name.tar $(du -m "$out/$name.tar" | cut -f1) MB, $out/$name.json"

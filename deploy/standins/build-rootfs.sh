#!/usr/bin/env bash
# Builds the root file system of a local stand-in for a public image that cannot be pulled
# on an offline machine. A stand-in is made of Debian's packages of this machine (their
# binaries, the libraries ldd lists, busybox-static for a shell and the usual tools) and
# honours the documented interface of the image it stands in for; it is Debian's version
# of the software (PostgreSQL 15, RabbitMQ 3.10, nginx 1.22, Prometheus 2.42, the PostgreSQL
# exporter 0.11), not the image's own. Jaeger is not packaged by Debian: its stand-in is
# built from the Go module proxy (scripts/build-jaeger.sh), at the version of its image.
#
#   deploy/standins/build-rootfs.sh <name> <out-dir>
#
# <name>                stands in for                       entrypoint / notes
#   postgres            postgres:15-alpine                  POSTGRES_USER/PASSWORD/DB, PGDATA,
#                                                           POSTGRES_HOST_AUTH_METHOD, POSTGRES_INITDB_ARGS,
#                                                           /docker-entrypoint-initdb.d/*.sql|*.sql.gz|*.sh;
#                                                           user postgres 70:70
#   rabbitmq            rabbitmq:3.13-management-alpine     RABBITMQ_DEFAULT_USER/PASS/VHOST, management
#                                                           plugin on 15672, rabbitmq_prometheus on 15692;
#                                                           user rabbitmq 100:101
#   nginx               nginx:1.27-alpine                   /etc/nginx/conf.d/*.conf, default listens on 80
#   nginx-unprivileged  nginxinc/nginx-unprivileged:*       the same, runs as 101:101, default on 8080
#   golang              golang:1.26-bookworm                this machine's Go toolchain in /usr/local/go
#   distroless          gcr.io/distroless/static-debian12   /etc/passwd (nonroot 65532), CA certificates,
#                                                           time zones; nothing else
#   jaeger              jaegertracing/jaeger:2.12.0         /cmd/jaeger/jaeger-linux, all in one with memory
#                                                           storage unless given --config; OTLP on 4317 (gRPC)
#                                                           and 4318 (HTTP), query API on 16686 (the UI is a
#                                                           placeholder page: the module has no built UI),
#                                                           health on 13133 (/status); user 10001
#   prometheus          prom/prometheus:v2.55.1             /bin/prometheus, /etc/prometheus/prometheus.yml,
#                                                           data in /prometheus, console libraries and consoles
#                                                           in /usr/share/prometheus; port 9090; user nobody
#   postgres-exporter   quay.io/prometheuscommunity/        /bin/postgres_exporter, DATA_SOURCE_NAME; port 9187;
#                       postgres-exporter:*                 user nobody
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
# Needs root (file owners), apt-get (nginx, prometheus, prometheus-postgres-exporter, the
# JavaScript packages of Prometheus's web pages and busybox-static are downloaded, not
# installed), the installed postgresql-15, rabbitmq-server and Go (and, for jaeger, the Go
# module proxy the first time: some ten minutes of build on 2 cores).
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
# fetch <package>...: downloads those not fetched yet, in one apt-get call (each call spends
# seconds reading the package lists).
fetch() {
	local pkg missing=()
	mkdir -p "$out/.debs"
	for pkg in "$@"; do
		compgen -G "$out/.debs/${pkg}_*.deb" >/dev/null || missing+=("$pkg")
	done
	[ ${#missing[@]} -gt 0 ] || return 0
	(cd "$out/.debs" && { apt-get download -qq "${missing[@]}" 2>/dev/null || { apt-get update -qq && apt-get download -qq "${missing[@]}"; }; }) >&2
}

deb_root() { # <package>: prints a folder holding the package's files
	local pkg=$1 dir=$out/.debs/$1
	if [ ! -d "$dir" ]; then
		fetch "$pkg"
		dpkg-deb -x "$out"/.debs/"${pkg}"_*.deb "$dir.tmp" && mv "$dir.tmp" "$dir"
	fi
	echo "$dir"
}

# unpack <package> [<tar option>...]: the package's files in the root as dpkg would put them,
# without its documentation (and what the options exclude).
unpack() {
	local dir
	dir=$(deb_root "$1")
	shift
	tar -C "$dir" --exclude=./usr/share/doc --exclude=./usr/share/man "$@" -cf - . | tar -C "$root" --keep-directory-symlink -xf -
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
	# The image's folders, the user's as there (with a read-only root, volumes over them).
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
	fetch busybox-static nginx nginx-common
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
jaeger)
	busybox
	certs_and_zones
	bin=$(bash "$here/../../scripts/build-jaeger.sh")
	copy "$bin" /cmd/jaeger/jaeger-linux
	libs "$root/cmd/jaeger/jaeger-linux"
	# The image's sampling strategies file, from the module the binary was built from.
	version=${bin##*/jaeger-}
	src=$(GOWORK=off GOFLAGS=-mod=mod go mod download -json "github.com/jaegertracing/jaeger@$version" | jq -r .Dir)
	copy "$src/cmd/jaeger/sampling-strategies.json" /cmd/jaeger/sampling-strategies.json
	# The image runs as the uid 10001 without an account, and listens on every address
	# (JAEGER_LISTEN_HOST, which the built-in all-in-one configuration reads).
	config '{"Entrypoint": ["/cmd/jaeger/jaeger-linux"], "Env": ["PATH='"$PATH_ENV"'", "JAEGER_LISTEN_HOST=0.0.0.0"],
		"User": "10001", "WorkingDir": "/", "Volumes": {"/tmp": {}},
		"ExposedPorts": {"4317/tcp": {}, "4318/tcp": {}, "5778/tcp": {}, "5779/tcp": {}, "9411/tcp": {}, "13132/tcp": {},
			"13133/tcp": {}, "14250/tcp": {}, "14268/tcp": {}, "16686/tcp": {}}}'
	;;
prometheus)
	# Debian's binary serves its web pages from /usr/share/prometheus/web, whose scripts and
	# fonts are links into Debian's JavaScript and font packages.
	web=(fonts-glyphicons-halflings libjs-bootstrap4 libjs-d3 libjs-eonasdan-bootstrap-datetimepicker libjs-jquery
		libjs-jquery-hotkeys libjs-moment libjs-mustache libjs-popper.js libjs-rickshaw)
	fetch busybox-static prometheus libjs-moment-timezone "${web[@]}"
	busybox
	certs_and_zones
	account nobody 65534 nobody 65534 /home
	unpack prometheus
	for p in "${web[@]}"; do unpack "$p"; done
	# The pages load moment-timezone-with-data.min.js only, not the 200 MB of tz data beside it.
	unpack libjs-moment-timezone --exclude=./usr/share/javascript/moment-timezone/data
	rm -rf "$root"/{etc/init.d,etc/default,etc/logrotate.d,lib/systemd,etc/prometheus/console_libraries,etc/prometheus/consoles}
	libs "$root/usr/bin/prometheus" "$root/usr/bin/promtool"
	# The image's layout: the console libraries and example consoles in /usr/share/prometheus
	# (linked from /etc/prometheus), upstream's example configuration, the data in /prometheus.
	examples=$(deb_root prometheus)/usr/share/doc/prometheus/examples
	mkdir -p "$root/usr/share/prometheus" "$root/prometheus"
	cp -r "$examples/console_libraries" "$examples/consoles" "$root/usr/share/prometheus/"
	ln -s /usr/share/prometheus/console_libraries /usr/share/prometheus/consoles "$root/etc/prometheus/"
	cp "$examples/prometheus.yml" "$root/etc/prometheus/prometheus.yml"
	chown -R 65534:65534 "$root/etc/prometheus" "$root/prometheus"
	config '{"Entrypoint": ["/bin/prometheus"],
		"Cmd": ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus",
			"--web.console.libraries=/usr/share/prometheus/console_libraries", "--web.console.templates=/usr/share/prometheus/consoles"],
		"Env": ["PATH='"$PATH_ENV"'"], "User": "nobody", "WorkingDir": "/prometheus",
		"ExposedPorts": {"9090/tcp": {}}, "Volumes": {"/prometheus": {}}}'
	;;
postgres-exporter)
	fetch busybox-static prometheus-postgres-exporter
	busybox
	certs_and_zones
	account nobody 65534 nobody 65534 /home
	copy "$(deb_root prometheus-postgres-exporter)/usr/bin/prometheus-postgres-exporter" /bin/postgres_exporter
	libs "$root/bin/postgres_exporter"
	config '{"Entrypoint": ["/bin/postgres_exporter"], "Env": ["PATH='"$PATH_ENV"'"], "User": "nobody",
		"WorkingDir": "/", "ExposedPorts": {"9187/tcp": {}}}'
	;;
*)
	echo "unknown stand-in $name (postgres, rabbitmq, nginx, nginx-unprivileged, golang, distroless, jaeger, prometheus, postgres-exporter)" >&2
	exit 2
	;;
esac

tar -C "$root" --numeric-owner -cf "$out/$name.tar" .
rm -rf "$root"
echo "$out/$name.tar $(du -m "$out/$name.tar" | cut -f1) MB, $out/$name.json"

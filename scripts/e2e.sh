#!/usr/bin/env bash
# End-to-end test: the Postman collection, run by Newman against the real binaries behind the
# gateway, once with the documented 2 s delay between requests and once with none (asynchronous
# checks retry on their own). Newman goes through apicheck, a proxy that checks every exchange
# against api/openapi.yaml: a response the document does not describe fails the run, and so
# does an operation of the document that the collection never exercised. Starts the system
# unless it is already running, and stops only what it started.
#
# Before that, headless Chromium opens the API reference the gateway serves at /docs, and
# every operation of api/openapi.yaml must be rendered there (tools/apicheck/cmd/docscheck; a
# screenshot of the page is left in .run/docs.png).
#
# The system it starts has Prometheus (METRICS=1): once the collections have made their
# traffic, the dashboards are checked against it (tools/apicheck/cmd/dashcheck): every query
# of deploy/grafana/order-system.json must return data, and every panel of the console
# /consoles/order-system.html, opened in headless Chromium, must show it (a screenshot is left
# in .run/dashboard.png). A system already running without Prometheus is not checked (said so).
#
# Then the same with sign-in on (AUTH=oidc): the system is started again with its development
# OpenID provider, and the sign-in collection runs with the tokens of two new users and of a
# client of another API. That part needs a system of its own: when one was already running,
# it is left alone and the sign-in collection is not run (said so at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

NEWMAN=${NEWMAN:-newman}
COLLECTION=postman/order-system.postman_collection.json
ENVIRONMENT=postman/local.postman_environment.json
CHECK_ADDR=127.0.0.1:8090 # apicheck, between Newman and the gateway
[ "$NEWMAN" != newman ] || bash scripts/install-tools.sh newman
bash scripts/install-tools.sh chromium

AUTH_COLLECTION=postman/order-system-auth.postman_collection.json
AUTH_ENVIRONMENT=postman/local-auth.postman_environment.json

started=
checker=
cleanup() {
	if [ -n "$checker" ]; then kill "$checker" 2>/dev/null || true; fi
	if [ -n "$started" ]; then bash scripts/stop.sh; fi
}
trap cleanup EXIT

mkdir -p bin
go build -o bin/apicheck ./tools/apicheck/cmd/apicheck
go build -o bin/docscheck ./tools/apicheck/cmd/docscheck
go build -o bin/dashcheck ./tools/apicheck/cmd/dashcheck
PROMETHEUS=http://127.0.0.1:9090 # where run.sh starts it with METRICS=1

# check runs Newman with the given arguments through apicheck, which must find every
# exchange described by the document and every operation reached.
check() {
	bin/apicheck -listen "$CHECK_ADDR" -upstream http://127.0.0.1:8000 -require-all api/openapi.yaml &
	checker=$!
	wait_for 10 "apicheck on $CHECK_ADDR" curl -s -o /dev/null --max-time 1 "http://$CHECK_ADDR/"
	"$@"
	# apicheck reports on SIGTERM and exits non-zero on a violation or an operation never reached.
	kill -TERM "$checker"
	local status=0
	wait "$checker" || status=$?
	checker=
	return "$status"
}

newman_run() { "$NEWMAN" run "$@" --env-var "baseUrl=http://$CHECK_ADDR" --reporters cli; }

if ! curl -fs -o /dev/null --max-time 2 http://127.0.0.1:8000/; then
	METRICS=1 bash scripts/run.sh
	started=1
fi
bin/docscheck -url http://127.0.0.1:8000/docs -screenshot .run/docs.png api/openapi.yaml
seed_collection() {
	newman_run "$COLLECTION" -e "$ENVIRONMENT" --delay-request 2000
	newman_run "$COLLECTION" -e "$ENVIRONMENT"
}
check seed_collection

# dashcheck waits for a scrape of every service and an evaluation of the rules after the
# collections, so that their traffic is on the panels.
if curl -fs -o /dev/null --max-time 2 "$PROMETHEUS/-/ready"; then
	bin/dashcheck -prometheus "$PROMETHEUS" -screenshot .run/dashboard.png deploy/grafana/order-system.json
else
	echo "the dashboards were not checked: the running system has no Prometheus at $PROMETHEUS (make stop, then make e2e)" >&2
fi

if [ -z "$started" ]; then
	echo "the sign-in collection did not run: a system make e2e did not start is running (make stop, then make e2e)" >&2
	exit 0
fi
bash scripts/stop.sh
started=
AUTH=oidc bash scripts/run.sh
started=1
issuer=http://127.0.0.1:8070 # where run.sh starts the provider
ann=$(bin/devidp token -issuer "$issuer")
bob=$(bin/devidp token -issuer "$issuer")
other=$(bin/devidp token -issuer "$issuer" -client other-app)
check newman_run "$AUTH_COLLECTION" -e "$AUTH_ENVIRONMENT" --env-var "tokenAnn=$ann" --env-var "tokenBob=$bob" --env-var "tokenOtherAudience=$other"

#!/usr/bin/env bash
# End-to-end test: the Postman collection, run by Newman against the real binaries behind the
# gateway, once with the documented 2 s delay between requests and once with none (asynchronous
# checks retry on their own). Newman goes through apicheck, a proxy that checks every exchange
# against api/openapi.yaml: a response the document does not describe fails the run, and so
# does an operation of the document that the collection never exercised. Starts the system
# unless it is already running, and stops only what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

NEWMAN=${NEWMAN:-newman}
COLLECTION=postman/order-system.postman_collection.json
ENVIRONMENT=postman/local.postman_environment.json
CHECK_ADDR=127.0.0.1:8090 # apicheck, between Newman and the gateway
[ "$NEWMAN" != newman ] || bash scripts/install-tools.sh newman

started=
if ! curl -fs -o /dev/null --max-time 2 http://127.0.0.1:8000/; then
	bash scripts/run.sh
	started=1
fi
checker=
cleanup() {
	if [ -n "$checker" ]; then kill "$checker" 2>/dev/null || true; fi
	if [ -n "$started" ]; then bash scripts/stop.sh; fi
}
trap cleanup EXIT

mkdir -p bin
go build -o bin/apicheck ./tools/apicheck/cmd/apicheck
bin/apicheck -listen "$CHECK_ADDR" -upstream http://127.0.0.1:8000 -require-all api/openapi.yaml &
checker=$!
for _ in $(seq 50); do curl -s -o /dev/null --max-time 1 "http://$CHECK_ADDR/" && break; sleep 0.1; done

"$NEWMAN" run "$COLLECTION" -e "$ENVIRONMENT" --env-var "baseUrl=http://$CHECK_ADDR" --delay-request 2000 --reporters cli
"$NEWMAN" run "$COLLECTION" -e "$ENVIRONMENT" --env-var "baseUrl=http://$CHECK_ADDR" --reporters cli

# apicheck reports on SIGTERM and exits non-zero on a violation or an operation never reached.
kill -TERM "$checker"
status=0
wait "$checker" || status=$?
checker=
exit "$status"

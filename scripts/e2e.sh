#!/usr/bin/env bash
# End-to-end test: the Postman collection, run by Newman against the real binaries behind the
# gateway, once with the documented 2 s delay between requests and once with none (asynchronous
# checks retry on their own). Starts the system unless it is already running, and stops only
# what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

NEWMAN=${NEWMAN:-newman}
COLLECTION=postman/order-system.postman_collection.json
ENVIRONMENT=postman/local.postman_environment.json
[ "$NEWMAN" != newman ] || bash scripts/install-tools.sh newman

started=
if ! curl -fs -o /dev/null --max-time 2 http://127.0.0.1:8000/; then
	bash scripts/run.sh
	started=1
fi
cleanup() { if [ -n "$started" ]; then bash scripts/stop.sh; fi; }
trap cleanup EXIT

"$NEWMAN" run "$COLLECTION" -e "$ENVIRONMENT" --delay-request 2000 --reporters cli
"$NEWMAN" run "$COLLECTION" -e "$ENVIRONMENT" --reporters cli

# order-system: four Go services (user, billing, order, notification) behind an nginx gateway.
# `make run` starts everything on this machine, `make test` runs the tests; `make help` lists the rest.

SHELL := bash
.SHELLFLAGS := -o pipefail -c

SERVICE_MODULES := pkg services/user services/billing services/order services/notification
MODULES  := api $(SERVICE_MODULES) tests/system tools/apicheck tools/deploycheck tools/devidp tools/ingressentry tools/loadgen tools/localrun tools/otlpsink
SERVICES := user billing order notification
NEWMAN   ?= newman
COLLECTION := postman/order-system.postman_collection.json
LOCAL_ENV  := postman/local.postman_environment.json

.DEFAULT_GOAL := help
.PHONY: help build test unit system fault chaos e2e alerts run stop token up down lint tidy images helm-deps helm-lint deploy-check cluster-up cluster-test cluster-down compose-test compose-down bench fuzz

# `make help` lists every target that has a `## description`, under the `##@ group` line
# above it: the groups Develop, Test, Deploy and Measure in this order, then any other.

##@ Develop
help: ## this list of targets, by group
	@awk -v groups='Develop Test Deploy Measure' 'BEGIN { FS = ":.*## "; group = "Other"; n = split(groups, order, " "); for (i = 1; i <= n; i++) known[order[i]] = 1 } \
		/^##@ / { group = substr($$0, 5); if (!(group in known)) { known[group] = 1; order[++n] = group } next } \
		/^[a-z0-9-]+:.*## / { lines[group] = lines[group] sprintf("  %-13s %s\n", $$1, $$2) } \
		END { if (!("Other" in known)) order[++n] = "Other"; \
			for (i = 1; i <= n; i++) if (order[i] in lines) { printf "%s%s\n%s", sep, order[i], lines[order[i]]; sep = "\n" } }' $(MAKEFILE_LIST)

build: ## build the four service binaries into bin/
	@mkdir -p bin
	@for s in $(SERVICES); do go build -o bin/$$s ./services/$$s/cmd/$$s || exit 1; done

##@ Test
test: unit system fuzz e2e alerts ## unit + system + fuzz + e2e + alerts, against the machine's PostgreSQL and RabbitMQ

unit: ## unit and integration tests of pkg, the services and four tools, with -race
	@bash scripts/install-tools.sh gcc nginx # nginx: the ingress entry's rendering is checked by running it
	@for m in $(SERVICE_MODULES) tools/loadgen tools/localrun tools/ingressentry tools/apicheck tools/devidp; do echo "== $$m"; (cd $$m && go test -race -count=1 -timeout 10m ./...) || exit 1; done

system: ## the real binaries under concurrency, crashes and lost responses, with -race; traces in a real Jaeger
	@bash scripts/install-tools.sh gcc pg_autoctl
	@jaeger=$$(bash scripts/build-jaeger.sh) && cd tests/system && JAEGER_BIN=$$jaeger go test -race -count=1 -timeout 10m -skip '^Test(Fault|Chaos)' ./...

fault: ## outages, failovers, killed broker nodes and consumers, poison, an alert firing, on servers of its own
	@bash scripts/install-tools.sh pg_autoctl promtool # and the Prometheus server with it
	@mkdir -p .run
	cd tests/system && SYSTEM_SERVERS_DIR=$(CURDIR)/.run/servers go test -count=1 -timeout 30m -v -run '^TestFault' .

chaos: ## random faults, then an oracle (CHAOS_SEED, CHAOS_DURATION=1m), on servers of its own
	@bash scripts/install-tools.sh nginx pg_autoctl
	@mkdir -p .run
	cd tests/system && SYSTEM_SERVERS_DIR=$(CURDIR)/.run/servers CHAOS_HISTORY=$${CHAOS_HISTORY:-$(CURDIR)/.run/chaos-history.jsonl} go test -count=1 -timeout 60m -v -run '^TestChaos$$' .

# Counted in executions, about 10 s each on two cores: with a duration, Go 1.26's fuzzing
# coordinator can fail a run that found nothing when the deadline catches a busy worker
# ("context deadline exceeded", golang/go#75804).
fuzz: ## the money fuzzers, about 10 s each beyond their seed corpus (the seeds run in make unit)
	cd pkg && go test -run '^$$' -fuzz FuzzRoundTrip -fuzztime 1000000x ./money
	cd pkg && go test -run '^$$' -fuzz FuzzAmountField -fuzztime 50000x ./httpx

e2e: ## the Postman collections run by Newman through apicheck and the gateway, sign-in off then on; /docs and the dashboards
	bash scripts/e2e.sh

alerts: ## the Prometheus recording and alerting rules (deploy/prometheus) checked and unit-tested by promtool
	@bash scripts/install-tools.sh promtool
	promtool check rules deploy/prometheus/rules.yml
	promtool test rules deploy/prometheus/rules_test.yml

##@ Develop
run: ## start the four services and the gateway on :8000 (REPLICAS=n: n of each; AUTH=oidc: sign-in; METRICS=1: Prometheus on :9090)
	bash scripts/run.sh

stop: ## stop what make run started
	bash scripts/stop.sh

token: ## an access token for a new user, as the last line (needs AUTH=oidc make run)
	@mkdir -p bin && go build -o bin/devidp ./tools/devidp
	@bin/devidp token -issuer http://127.0.0.1:8070

##@ Deploy
up: ## docker compose up --build, waiting until all is healthy (needs a Docker engine)
	@bash scripts/vendor-redoc.sh >/dev/null
	docker compose up --build -d --wait

down: ## stop docker compose
	docker compose down

##@ Develop
lint: ## go vet and gofmt over every module, shellcheck over every script
	@for m in $(MODULES); do (cd $$m && go vet ./...) || exit 1; done
	@cd deploy/kube/pause && GOWORK=off GO111MODULE=off go vet main.go
	@test -z "$$(gofmt -l $(MODULES) deploy/kube)" || { gofmt -l $(MODULES) deploy/kube; exit 1; }
	@bash scripts/install-tools.sh shellcheck
	@find deploy scripts tools -name '*.sh' -print0 | xargs -0 shellcheck --severity=warning .ci/run

tidy: ## go mod tidy in every module
	@for m in $(MODULES); do (cd $$m && go mod tidy) || exit 1; done

##@ Deploy
images: ## build order-system-<service>:<chart appVersion> (TAG=...; needs a Docker engine)
	bash deploy/docker/build-images.sh

helm-deps: ## package the library chart into each subchart (helm dependency update, offline)
	bash deploy/helm/dependencies.sh

helm-lint: helm-deps ## helm lint the chart, with the bundled databases and without
	helm lint deploy/helm/order-system
	helm lint deploy/helm/order-system --set postgresql.enabled=false,rabbitmq.enabled=false,global.amqp.password=lint \
		--set global.database.users.user.password=lint,global.database.users.billing.password=lint \
		--set global.database.users.order.password=lint,global.database.users.notification.password=lint

deploy-check: helm-lint ## helm-lint, render the chart and load the compose file, every object checked strictly
	cd tools/deploycheck && go test -count=1 ./...

cluster-up: ## a one-node Kubernetes here with the chart (2 replicas each) and an HTTP entry (root)
	@bash deploy/kube/cluster-up.sh || { echo "cluster-up failed: stopping what it started"; bash deploy/kube/cluster-down.sh; exit 1; }

cluster-test: ## on cluster-up's cluster: Newman, helm test, a rollout and pod deletions under load
	bash deploy/kube/cluster-test.sh

cluster-down: ## stop cluster-up's cluster and check the machine is as it was
	bash deploy/kube/cluster-down.sh

compose-test: ## compose up on a Docker engine of its own, offline: Newman, a restart under load, traces, metrics (root)
	bash deploy/docker/compose-test.sh

compose-down: ## clean up after a compose-test that was killed before its own clean-up (root)
	bash deploy/docker/compose-down.sh

##@ Measure
bench: ## a pgbench reference, then three load runs through the gateway (docs/performance.md)
	bash tools/bench/bench.sh

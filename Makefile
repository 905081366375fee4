# order-system: four Go services (user, billing, order, notification) behind an nginx gateway.
# `make run` starts everything on this machine, `make test` runs every test.

SHELL := bash
.SHELLFLAGS := -o pipefail -c

SERVICE_MODULES := pkg services/user services/billing services/order services/notification
MODULES  := $(SERVICE_MODULES) tests/system tools/apicheck tools/deploycheck tools/ingressentry tools/loadgen tools/otlpsink
SERVICES := user billing order notification
NEWMAN   ?= newman
COLLECTION := postman/order-system.postman_collection.json
LOCAL_ENV  := postman/local.postman_environment.json

.DEFAULT_GOAL := help
.PHONY: help build test unit system fault chaos e2e run stop up down lint tidy images helm-lint deploy-check kube-test cluster-up cluster-test cluster-down compose-test bench fuzz

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build the four service binaries into bin/
	@mkdir -p bin
	@for s in $(SERVICES); do go build -o bin/$$s ./services/$$s/cmd/$$s || exit 1; done

test: unit system fuzz e2e ## all tests: unit + integration (real PostgreSQL and RabbitMQ), system, fuzz, Newman end to end

unit: ## unit and integration tests of pkg and every service, with the race detector
	@bash scripts/install-tools.sh gcc
	@for m in $(SERVICE_MODULES) tools/loadgen tools/ingressentry tools/apicheck; do echo "== $$m"; (cd $$m && go test -race -count=1 -timeout 10m ./...) || exit 1; done

system: ## the real binaries under concurrency, crashes and lost responses (tests/system), with the race detector
	@bash scripts/install-tools.sh gcc
	cd tests/system && go test -race -count=1 -timeout 10m -skip '^Test(Fault|Chaos)' ./...

fault: ## fault suite: broker and database outages, killed consumers, two relays, poison (restarts the local PostgreSQL and RabbitMQ)
	cd tests/system && go test -count=1 -timeout 15m -v -run '^TestFault' ./...

chaos: ## randomized faults against the real binaries, then an oracle (CHAOS_SEED, CHAOS_DURATION=1m; restarts the local PostgreSQL and RabbitMQ)
	@bash scripts/install-tools.sh nginx
	@mkdir -p .run
	cd tests/system && CHAOS_HISTORY=$${CHAOS_HISTORY:-$(CURDIR)/.run/chaos-history.jsonl} go test -count=1 -timeout 60m -v -run '^TestChaos$$' ./...

fuzz: ## run the money fuzzers briefly beyond their seed corpus (the seeds also run in make unit)
	cd pkg && go test -run '^$$' -fuzz FuzzRoundTrip -fuzztime 10s ./money
	cd pkg && go test -run '^$$' -fuzz FuzzAmountField -fuzztime 10s ./httpx

e2e: ## Newman run of the Postman collection against the real binaries behind the gateway
	bash scripts/e2e.sh

run: ## start the four services and the gateway on :8000 in the background (REPLICAS=n: n instances of each)
	bash scripts/run.sh

stop: ## stop what make run started
	bash scripts/stop.sh

up: ## start everything with docker compose and wait until it is healthy (needs a Docker engine)
	docker compose up --build -d --wait

down: ## stop docker compose
	docker compose down

lint: ## go vet and gofmt over every module
	@for m in $(MODULES); do (cd $$m && go vet ./...) || exit 1; done
	@test -z "$$(gofmt -l $(MODULES))" || { gofmt -l $(MODULES); exit 1; }

tidy: ## go mod tidy in every module
	@for m in $(MODULES); do (cd $$m && go mod tidy) || exit 1; done

images: ## build the images order-system-<service>:<chart appVersion> (TAG=... for another; needs a Docker engine)
	bash deploy/docker/build-images.sh

helm-lint: ## helm lint the chart, with the bundled databases and without
	helm lint deploy/helm/order-system
	helm lint deploy/helm/order-system --set postgresql.enabled=false,rabbitmq.enabled=false

deploy-check: helm-lint ## render the chart and load the compose file, checking every object strictly
	cd tools/deploycheck && go test -count=1 ./...

kube-test: ## helm install/upgrade/uninstall against a real kube-apiserver built here (no kubelet)
	bash deploy/kube/install-test.sh

cluster-up: ## a real one-node Kubernetes here with the chart installed (2 replicas each) and an HTTP entry; cluster-down stops it
	@bash deploy/kube/cluster-up.sh || { echo "cluster-up failed: stopping what it started"; bash deploy/kube/cluster-down.sh; exit 1; }

cluster-test: ## against cluster-up's cluster: Newman through the entry, helm test, a rollout and pod deletions under load
	bash deploy/kube/cluster-test.sh

cluster-down: ## stop cluster-up's cluster and check the machine is as it was
	bash deploy/kube/cluster-down.sh

compose-test: ## the images built and docker compose up run by a Docker engine of its own, offline; Newman, a restart under load (root)
	bash deploy/docker/compose-test.sh

bench: ## pgbench reference + three load runs (mix, all keyed, open loop) through the gateway (CLIENTS=32 DURATION=30s RATE= REPLICAS=1 BASE_URL=... RUNS="mix keyed open" TRACING=1: export every span)
	bash tools/bench/bench.sh

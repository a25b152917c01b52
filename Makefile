# Signalbox developer tasks. A fresh Debian machine needs only `make run` and
# `make test`; the scripts in scripts/ install and start what is missing.
# `make` alone prints the targets.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# Pinned tool versions, passed to the scripts (the single place to bump them).
TEMPORAL_CLI_VERSION := 1.5.1
# staticcheck 2026.2.2, which supports Go 1.26.
STATICCHECK_VERSION := 0.8.2
export TEMPORAL_CLI_VERSION STATICCHECK_VERSION
# Production topology (deploy/, make test-cluster): helm renders the chart in
# make test; the Temporal server and its SQL tool run a real cluster on
# PostgreSQL (v1.32.1 is the last that builds with go 1.26.8).
HELM_VERSION := 3.22.0
TEMPORAL_SERVER_VERSION := 1.32.1
export HELM_VERSION TEMPORAL_SERVER_VERSION

.PHONY: help run test test-race test-faults lint fmt vet build migrate bench bench-segments temporal psql stop clean
.PHONY: test-cluster bench-cluster

help: ## Show the targets
	@echo 'Usage: make TARGET'
	@echo
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z0-9_-]+:.*## / { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

run: ## Run signalbox dev with PostgreSQL and a Temporal dev server (Ctrl-C stops all)
	@scripts/run.sh

test: ## Lint, run every Go test against PostgreSQL, then fuzz each target briefly
	@scripts/test.sh

test-race: ## Run every Go test with the race detector (slower; not part of make test)
	@scripts/test.sh --race

test-faults: ## Crash every process under load (300 contacts) and check no promise breaks; prints a summary
	@scripts/faults.sh

lint: ## Check gofmt, go vet and staticcheck
	@scripts/lint.sh

fmt: ## Format the Go files with gofmt
	@scripts/lint.sh fmt

vet: ## Run go vet
	@scripts/lint.sh vet

build: ## Build bin/signalbox
	go build -o bin/signalbox ./cmd/signalbox

migrate: build ## Apply the migrations to DATABASE_URL (default: the local cluster)
	@scripts/with-services.sh -- bin/signalbox migrate

bench: ## Run the benchmarks (record path, act path with its own Temporal dev server, then segments and analytics); figures are ratios
	@scripts/temporal.sh build
	@SIGNALBOX_TEMPORAL_CLI=$(CURDIR)/bin/temporal scripts/with-services.sh -- \
		bash -c 'go run ./cmd/signalbox-bench && go run ./cmd/signalbox-actbench && go run ./cmd/signalbox-segbench'

bench-segments: ## Run only the segments and analytics benchmark (loads 1,000,000 generated events with COPY)
	@scripts/with-services.sh -- go run ./cmd/signalbox-segbench

test-cluster: ## Run the production topology here: a real Temporal server on PostgreSQL, 2 APIs, 3 workers, one killed mid-run
	@scripts/test-cluster.sh

bench-cluster: ## Act path on a real Temporal cluster vs the dev server: 1 and 3 workers vs bare SDK, drain of a 20,000-event burst
	@scripts/bench-cluster.sh

temporal: ## Start the Temporal dev server in the background (make stop stops it)
	@scripts/temporal.sh start

psql: ## Open psql on the development database
	@scripts/with-services.sh --interactive -- bash -c 'exec psql "$$DATABASE_URL"'

stop: ## Stop the local Temporal dev server and PostgreSQL cluster
	@scripts/temporal.sh stop
	@scripts/postgres.sh stop

clean: ## Stop the local services and delete bin/ and .data/ (all local data)
	@scripts/temporal.sh stop
	@scripts/postgres.sh destroy
	rm -rf bin .data

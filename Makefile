# customerbus: `make run` starts the whole system, `make test` runs every test.
# Both find or start PostgreSQL themselves (deploy/local/postgres.sh) and embed NATS;
# `make test` also gives the tests that kill a server of their own its programs.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

SQLC_VERSION := v1.30.0
BIN := $(CURDIR)/var/bin
IMAGE ?= customerbus:dev
SQLC := $(BIN)/sqlc
PG := deploy/local/postgres.sh
GOTESTFLAGS ?= -race -count=1 -p 2 -timeout 8m
BENCHFLAGS ?=
FUZZTIME ?= 30s
# Go 1.26's fuzz coordinator can fail a target that found nothing with a bare
# "context deadline exceeded" when -fuzztime runs out (go.dev/issue/75804,
# fixed in Go 1.27). Only `make fuzz` uses the newer Go; the go command takes
# it from the module proxy (76 MB, once per machine). The module stays on 1.26.
FUZZ_GOTOOLCHAIN ?= go1.27.3

.PHONY: help run test fuzz check bench generate tools build image clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# Local development: webhooks may go to http:// receivers on this machine.
run: ## the whole system in one process (embedded NATS, local PostgreSQL)
	DATABASE_URL="$$($(PG) customerbus)" WEBHOOKS_ALLOW_HTTP=$${WEBHOOKS_ALLOW_HTTP:-true} \
		WEBHOOKS_ALLOW_PRIVATE_ADDRESSES=$${WEBHOOKS_ALLOW_PRIVATE_ADDRESSES:-true} go run ./cmd/customerbus run

# The console's browser tests drive Debian's chromium; it is installed when
# missing, and the tests are told where it is, so they cannot skip.
test: ## every test, on real PostgreSQL and real NATS (and the console in chromium)
	@command -v chromium >/dev/null || { echo "installing chromium for the console's browser tests"; \
		{ apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }; } >/dev/null; }
	TEST_DATABASE_URL="$$($(PG) postgres)" TEST_POSTGRES_BINDIR="$$($(PG) --bindir)" \
		TEST_CHROMIUM="$$(command -v chromium)" go test $(GOTESTFLAGS) ./...

# go test -fuzz takes one target of one package at a time: each Fuzz
# function that `go test -list` finds runs for FUZZTIME. What a target
# finds is written under its package's testdata/fuzz, which `make test`
# runs from then on.
fuzz: ## each fuzz target for FUZZTIME (default 30s; FUZZTIME=5s in CI), on real PostgreSQL
	export TEST_DATABASE_URL="$$($(PG) postgres)" GOTOOLCHAIN=$(FUZZ_GOTOOLCHAIN); \
	go test -list '^Fuzz' ./... | awk '/^Fuzz/ { names = names " " $$1 } /^ok/ { n = split(names, a, " "); for (i = 1; i <= n; i++) print $$2, a[i]; names = "" }' | \
	while read -r pkg target; do \
		echo "== $$target ($$pkg)"; \
		go test -run='^$$' -fuzz="^$$target\$$" -fuzztime=$(FUZZTIME) "$$pkg" </dev/null || exit 1; \
	done

bench: ## the benchmarks: HTTP create and bus command rates against a plain pgx baseline, import and export of 1M customers against plain COPY, search latency on 1M customers; erasure, data export and history on 1M imported customers with BENCHFLAGS="-cases privacy", duplicate finding on 1M with "-cases duplicates" (BENCHFLAGS="-cases import" etc.)
	BENCH_DATABASE_URL="$$($(PG) postgres)" go run ./cmd/bench $(BENCHFLAGS)

generate: tools ## regenerate the sqlc code in db/gen
	$(SQLC) generate

# check builds the pinned sqlc (cgo, minutes on a fresh machine), so it is a
# target of its own: `make test` starts testing at once, CI runs both.
check: tools ## fail when the generated code is stale, or vet or gofmt complain
	$(SQLC) diff
	go vet ./...
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

tools: ## install the pinned sqlc into var/bin
	@if [ "$$($(SQLC) version 2>/dev/null)" != "$(SQLC_VERSION)" ]; then \
		echo "installing sqlc $(SQLC_VERSION) (cgo, a few minutes the first time)"; \
		GOBIN=$(BIN) CGO_ENABLED=1 go install github.com/sqlc-dev/sqlc/cmd/sqlc@$(SQLC_VERSION); \
	fi

build: ## build the binary into var/bin
	go build -o $(BIN)/customerbus ./cmd/customerbus

# The image cannot be built where there is no docker; deploy/deploy_test.go
# checks the Dockerfile's rules in `make test` all the same.
image: ## build the container image IMAGE (default customerbus:dev) with docker
	@command -v docker >/dev/null || { echo "make image: docker is not on PATH; install docker (or build the Dockerfile with another builder)" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "make image: docker is installed but its daemon does not answer (docker info failed); start it" >&2; exit 1; }
	docker build -t $(IMAGE) .

clean: ## stop a throwaway PostgreSQL cluster and remove var/
	$(PG) --stop
	rm -rf var

# cas — the commands CI and developers run. `make help` lists them.
SHELL := /bin/bash
GO ?= go
GOBIN := $(shell $(GO) env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)
GOLANGCI_VERSION := v2.15.0

.PHONY: help build demo test test-race check fmt vet lint lint-install tidy-check graph bench bench-scale fuzz docs deps clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build ./bin/cas
	$(GO) build -o bin/cas .

deps: ## install what the tests need (b3sum, python3, git, strace, python3-torch, chromium, versitygw) if missing
	@bash scripts/deps.sh

demo: build ## run the README demo on a local store in ./demo-work (installs b3sum, python3 and git if missing; no S3 server)
	@bash scripts/deps.sh demo
	bash scripts/demo.sh

# The timeout is per package binary: cas and cli each run several minutes
# on 2 cores, near go test's default of 10.
test: deps ## run every test
	$(GO) test -count=1 -timeout 30m ./...

# -short skips only the slowest end-to-end cases, which `make test` runs;
# every package still runs under the race detector. The timeout is per
# package binary: the cas package alone runs minutes under -race on 2 cores.
test-race: deps ## run every test (-short) with the race detector
	$(GO) test -count=1 -race -short -timeout 30m ./...

fmt: ## fail if gofmt would change anything
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet: ## go vet
	$(GO) vet ./...

lint: lint-install ## golangci-lint: the import graph (depguard), no clock or printing in the library (forbidigo)
	golangci-lint run ./...

lint-install: # golangci-lint $(GOLANGCI_VERSION) into GOBIN unless that version is on PATH
	@[ "v$$(golangci-lint version --short 2>/dev/null)" = "$(GOLANGCI_VERSION)" ] || { \
		echo "installing golangci-lint $(GOLANGCI_VERSION) (a few minutes of compiling)" >&2; \
		$(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION); }

tidy-check: ## fail if go mod tidy would change go.mod or go.sum
	@$(GO) mod tidy -diff || { echo "go mod tidy changes go.mod/go.sum (above): run it and commit"; exit 1; }

# The cheap checks first, so a formatting slip fails in seconds. CI runs
# `make test` and then this; test-race is the only test run in it.
check: fmt vet tidy-check lint test-race ## everything CI is strict about

graph: ## print which of our packages import which (docs/architecture.md shows it)
	@$(GO) run ./scripts/importgraph

bench: build ## cas beside b3sum and restic on generated data; prints ratios
	bash scripts/bench.sh

bench-scale: ## scale (issue 13): 10^4-10^6 files beside restic, requests vs history on S3, a 10^7-entry lookup index; BENCH_SCALE_FILES, BENCH_SCALE_PUSHES, BENCH_SCALE_ENTRIES
	bash scripts/bench-scale.sh

fuzz: ## run every fuzzer for FUZZTIME each (default 60s); make test only replays their corpora
	bash scripts/fuzz.sh

docs: ## regenerate the CLI reference in docs/cli/
	$(GO) run ./scripts/gendocs docs/cli

clean:
	rm -rf bin demo-work

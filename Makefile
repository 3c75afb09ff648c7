# cas — the commands CI and developers run. `make help` lists them.
SHELL := /bin/bash
GO ?= go
GOBIN := $(shell $(GO) env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)
GOLANGCI_VERSION := v2.15.0

.PHONY: help build demo test test-race check fmt vet lint tidy-check bench fuzz docs deps clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build ./bin/cas
	$(GO) build -o bin/cas .

deps: ## install what the tests need (b3sum, python3, git, strace, python3-torch, versitygw) if missing
	@bash scripts/deps.sh

demo: build deps ## run the README demo on a local store in ./demo-work
	bash scripts/demo.sh

test: deps ## run every test
	$(GO) test -count=1 ./...

test-race: deps ## run every test with the race detector
	$(GO) test -count=1 -race ./...

fmt: ## fail if gofmt would change anything
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet: ## go vet
	$(GO) vet ./...

lint: ## golangci-lint, with the import-direction rules of .golangci.yml
	@command -v golangci-lint >/dev/null || $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)
	golangci-lint run ./...

tidy-check: ## fail if go mod tidy would change go.mod or go.sum
	@cp go.mod /tmp/cas-go.mod.bak; cp go.sum /tmp/cas-go.sum.bak; \
	$(GO) mod tidy; \
	if ! diff -q go.mod /tmp/cas-go.mod.bak >/dev/null || ! diff -q go.sum /tmp/cas-go.sum.bak >/dev/null; then \
		cp /tmp/cas-go.mod.bak go.mod; cp /tmp/cas-go.sum.bak go.sum; echo "go mod tidy changes go.mod/go.sum: run it and commit"; exit 1; fi

check: fmt vet lint test-race tidy-check ## everything CI is strict about

bench: build ## cas beside b3sum and restic on generated data; prints ratios
	bash scripts/bench.sh

fuzz: ## run every fuzzer for FUZZTIME each (default 60s); make test only replays their corpora
	bash scripts/fuzz.sh

docs: ## regenerate the CLI reference in docs/cli/
	$(GO) run ./scripts/gendocs docs/cli

clean:
	rm -rf bin demo-work

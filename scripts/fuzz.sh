#!/usr/bin/env bash
# Runs every fuzzer of the module for FUZZTIME each (default 60s). `make test`
# runs their seed corpora only; this is the longer search. Failing inputs go
# to the package's testdata/fuzz/, where `make test` replays them forever.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-60s}
for pkg in $(go list ./...); do
	for f in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
		echo "== $pkg $f ($fuzztime)"
		go test -run '^$' -fuzz "^${f}\$" -fuzztime "$fuzztime" -fuzzminimizetime 5s "$pkg"
	done
done

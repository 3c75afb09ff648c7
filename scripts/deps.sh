#!/usr/bin/env bash
# Installs, if missing, what the test suite needs besides Go: from Debian
# packages b3sum (the reference the digests are checked against), python3
# (the stand-alone tree-digest script in docs/, the runs cas records), git
# strace (TestKillPoints kills cas at chosen system calls with it) and
# python3-torch with python3-numpy (reproduce_torch.txtar trains real,
# tiny models) and chromium (the report tests load each report in a real,
# headless browser with the network off);
# from the Go module proxy versitygw, the S3 server the remote tests run
# against on 127.0.0.1.
#
#   scripts/deps.sh          everything the tests need
#   scripts/deps.sh demo     only what `make demo` uses: b3sum, python3, git
set -euo pipefail
mode=${1:-test}
need=()
command -v b3sum >/dev/null 2>&1 || need+=(b3sum)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v git >/dev/null 2>&1 || need+=(git)
if [ "$mode" != demo ]; then
	command -v strace >/dev/null 2>&1 || need+=(strace)
	command -v chromium >/dev/null 2>&1 || need+=(chromium)
fi
# The reviewer's tests use Debian's torch. The demo's training script
# saves its checkpoint with torch when it is importable (else with
# pickle); the demo installs it too, so that its checkpoint is torch's.
/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1 || need+=(python3-torch python3-numpy)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]}" >&2
	sudo_cmd=""
	[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
	$sudo_cmd apt-get update -qq
	$sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ "$mode" = demo ]; then
	exit 0 # the demo stays on the local store: no S3 server
fi
if ! command -v versitygw >/dev/null 2>&1 && [ ! -x "$(go env GOPATH)/bin/versitygw" ]; then
	echo "installing versitygw, the S3 server of the tests (a minute or two of compiling)" >&2
	go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
fi

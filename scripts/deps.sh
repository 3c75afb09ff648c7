#!/usr/bin/env bash
# Installs, if missing, what the test suite needs besides Go: b3sum (the
# reference the digests are checked against) and python3 (the stand-alone
# tree-digest script in docs/, and the runs cas records) and git.
# Debian packages only.
set -euo pipefail
need=()
command -v b3sum >/dev/null 2>&1 || need+=(b3sum)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v git >/dev/null 2>&1 || need+=(git)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]}" >&2
	sudo_cmd=""
	[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
	$sudo_cmd apt-get update -qq
	$sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi

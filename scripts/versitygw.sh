#!/usr/bin/env bash
# Runs versitygw, the S3 server the tests use, in the foreground on
# 127.0.0.1 over a directory: for trying cas against S3 by hand and for
# benchmarks. Tests start their own (remote/s3test); `make deps` installs it.
#
#   scripts/versitygw.sh [DIR [PORT]]     (defaults: a new temp dir, 7070)
#
# Keys come from ROOT_ACCESS_KEY / ROOT_SECRET_KEY (defaults below: local
# throwaway keys). It prints what a client needs, then serves until Ctrl-C.
set -euo pipefail
bin=$(command -v versitygw || echo "$(go env GOPATH)/bin/versitygw")
if [ ! -x "$bin" ]; then
	echo "versitygw not found on PATH or in \$(go env GOPATH)/bin; run make deps" >&2
	exit 1
fi
dir=${1:-$(mktemp -d -t versitygw-XXXXXX)}
port=${2:-7070}
mkdir -p "$dir"
export ROOT_ACCESS_KEY=${ROOT_ACCESS_KEY:-cas-local}
export ROOT_SECRET_KEY=${ROOT_SECRET_KEY:-cas-local-secret}
endpoint=http://127.0.0.1:$port
cat >&2 <<MSG
versitygw on $endpoint, buckets under $dir (each directory is one). In another shell:
  mkdir -p $dir/cas     # the bucket "cas" (or: aws --endpoint-url $endpoint s3 mb s3://cas)
  export AWS_ACCESS_KEY_ID=$ROOT_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$ROOT_SECRET_KEY AWS_REGION=us-east-1
  cas remote add origin s3://cas --endpoint $endpoint
MSG
exec "$bin" --quiet --region us-east-1 --port "127.0.0.1:$port" posix "$dir"

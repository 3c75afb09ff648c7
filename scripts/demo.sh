#!/usr/bin/env bash
# The README demo: a small generated dataset and a checkpoint-like file are
# pushed into a local store, listed, restored into a new directory and
# verified byte for byte. Everything happens in ./demo-work (removed first).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cas=$root/bin/cas
[ -x "$cas" ] || go build -o "$cas" .
work=$root/demo-work
rm -rf "$work"
mkdir -p "$work"
cd "$work"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

# A dataset: 300 small files in 3 splits, and a label file.
for split in train val test; do
	mkdir -p data/$split
	for i in $(seq -w 1 100); do
		head -c $((2048 + 10#$i * 37)) /dev/urandom >"data/$split/sample-$i.bin"
	done
done
printf 'id,label\n' >data/labels.csv
for i in $(seq 1 300); do printf '%d,%d\n' "$i" $((i % 10)) >>data/labels.csv; done
# A checkpoint-like file: 24 MiB of "weights" behind a small header.
mkdir -p ckpt
{ printf 'PK-demo-checkpoint-header\n'; head -c $((24 << 20)) /dev/urandom; } >ckpt/epoch1.pt

step "$cas" init
step "$cas" push data --name demo/data
step "$cas" push ckpt/epoch1.pt --name demo/ckpt
step "$cas" refs
step "$cas" ls demo/data
# A second checkpoint that shares most bytes with the first: only the
# changed part is stored again.
cp ckpt/epoch1.pt ckpt/epoch2.pt
printf 'step 2' | dd of=ckpt/epoch2.pt bs=1 seek=$((20 << 20)) conv=notrunc status=none
step "$cas" push ckpt/epoch2.pt --name demo/ckpt2
step "$cas" stats

step "$cas" restore demo/data restored/data
step "$cas" restore demo/ckpt restored/ckpt/
step diff -r data restored/data
b3sum ckpt/epoch1.pt | cut -d' ' -f1 >expected.b3
b3sum restored/ckpt/epoch1.pt | cut -d' ' -f1 >got.b3
step cmp expected.b3 got.b3
step "$cas" verify
echo
echo "demo ok: pushed, restored and verified byte for byte (work dir: $work)"

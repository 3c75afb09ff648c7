#!/usr/bin/env bash
# The README demo, the whole way on a local store in ./demo-work (removed
# first): push a generated dataset and a checkpoint-like file, restore and
# verify them byte for byte; then record a tiny training run with cas run
# (its checkpoint holds an RNG state), pin it, collect garbage, restore its
# outputs into a fresh directory, verify the pin and everything the run
# binds, and reproduce it from the pin.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cas=$root/bin/cas
[ -x "$cas" ] || go build -o "$cas" .
work=$root/demo-work
rm -rf "$work"
mkdir -p "$work/project"
cd "$work/project"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
export GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@example.com GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@example.com GIT_CONFIG_GLOBAL=/dev/null

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

# A tiny training script using the Python companion (python/, here on
# PYTHONPATH; `pip install ./python` installs it): seeded by CAS_SEED, it
# logs a loss per step (the run's metrics history) and saves a checkpoint
# holding its weights and every RNG state; the final values of the history
# are the run's metrics.
export PYTHONPATH=$root/python${PYTHONPATH:+:$PYTHONPATH}
cat >train.py <<'PY'
import random
import cas
seed = cas.seed_everything()
with cas.open("data/labels.csv", "r") as f:  # a path, or a stored file: "demo/data:labels.csv"
    labels = [int(l.split(",")[1]) for l in f.read().splitlines()[1:]]
w = [random.gauss(0, 1) for _ in range(32)]
for step in range(20):
    w = [0.9 * x + 0.01 * random.random() for x in w]
    acc = 0.5 + (abs(sum(w)) % 1.0) / 4 + sum(labels) / 1e6
    cas.log(step=step, acc=round(acc, 6), loss=round(1 - acc, 6))
cas.save_checkpoint("out/model.pkl", model={"w": w}, step=20)
print("trained on", len(labels), "labels with seed", seed, "acc", round(acc, 4))
PY
printf 'data/\nout/\nckpt/\nrestored/\n*.b3\n' >.gitignore
git init -q -b main
git add train.py .gitignore
git commit -qm "demo training script"

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

# Record a run: inputs, commit, environment, seed, outputs, the metrics
# history and its final values, and the RNG state inside the checkpoint.
step "$cas" run --name demo-train --seed 7 --input data=./data --output ./out -- python3 train.py
step "$cas" show demo-train
step "$cas" inspect out/model.pkl
step "$cas" pin demo-result runs/demo-train --message "the demo's published result"
step "$cas" pins
# Garbage collection keeps everything a ref, pin or run needs; with no
# grace period it deletes at once what nothing keeps (here: nothing).
step "$cas" gc --grace 0
# Restore the run's outputs into a fresh directory and compare.
outdigest=$("$cas" show demo-train --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["manifest"]["outputs"][0]["digest"])')
step "$cas" restore "$outdigest" "$work/fresh/out"
step diff -r out "$work/fresh/out"
step "$cas" verify demo-result
step "$cas" verify demo-train
step "$cas" reproduce demo-result --curve
# The page a reviewer reads: verdict, lineage, environment and code.
step "$cas" report demo-result --verify --out "$work/report.html"
echo
echo "demo ok: pushed, restored, recorded, pinned, collected, verified and reproduced (work dir: $work)"
echo "the reviewer's report: $work/report.html"

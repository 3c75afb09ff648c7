#!/usr/bin/env bash
# bench.sh — the benchmark behind `make bench`.
#
# Generates deterministic data (scripts/gendata), then runs cas beside b3sum and
# restic on the same data in the same run and prints median wall times, ratios
# and peak memory against the goals of issue 2. Then it starts versitygw (an S3
# server) on a free 127.0.0.1 port over a directory in the work directory and
# runs cas push/restore to it beside `aws s3 cp` against the same server, for
# the goals of issue 3. Beside them it times the floors of issue 14, the
# speed of the disk itself: copying the big file with `dd ... conv=fsync`,
# hashing the tree with b3sum (2 processes) plus writing its concatenation
# durably, `cp` for restore and `b3sum --num-threads 2` for `cas hash`, and
# prints cas's ratio to each. The float case (issue 15) compares stored / raw
# of real torch checkpoints with zstd and byte grouping + LZ4, push and
# restore with the float codec and without, and the codec's speed per core
# beside huff0 alone. Everything stays on this machine.
#
# Environment:
#   BENCH_DIR      parent of the work directory (default /tmp)
#   BENCH_SIZE_MB  size of the big incompressible file in MiB (default 1024)
#   BENCH_FILES    number of small files (default 50000)
#   BENCH_RUNS     timed runs per tool and case; the median is reported (default 3)
#   BENCH_QUICK=1  tiny smoke run: 64 MiB, 2000 files, unless set explicitly
#   BENCH_KEEP=1   keep the work directory
#   BENCH_S3=0     skip the S3 cases (versitygw, aws CLI)
#   BENCH_CKPT=0   skip the checkpoint-series dedup case
#   BENCH_FLOAT=0  skip the float-codec case (issue 15: torch checkpoints written
#                  by /usr/bin/python3 with Debian's python3-torch)
#   BENCH_BASELINE=REV  also time the local pushes with cas built at git REV
#                  (e.g. 22aa458^, the last commit before pushes fsync)
#
# Exit status: 0 when every tool ran and every restored byte matched, even if a
# goal is missed (this is a report); non-zero if a tool failed or bytes differ.
# shellcheck disable=SC2059 # the table formats are ours, not data
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [[ ${BENCH_QUICK:-0} == 1 ]]; then
	SIZE_MB=${BENCH_SIZE_MB:-64}
	FILES=${BENCH_FILES:-2000}
else
	SIZE_MB=${BENCH_SIZE_MB:-1024}
	FILES=${BENCH_FILES:-50000}
fi
RUNS=${BENCH_RUNS:-3}
DIRS=100
for v in SIZE_MB FILES RUNS; do
	[[ ${!v} =~ ^[0-9]+$ ]] || { echo "bench: $v must be a number, got '${!v}'" >&2; exit 2; }
done
((SIZE_MB > 0 && FILES > 0 && RUNS > 0)) || { echo "bench: sizes and BENCH_RUNS must be > 0" >&2; exit 2; }

# Goals of issue 2.
GOAL_PUSH_BIG=1.25    # cas push / b3sum
GOAL_PUSH_TREE=2      # cas push / b3sum as 2 processes
GOAL_REPUSH_S=0.3     # absolute seconds
GOAL_RESTORE_X=3.5    # restic restore / cas restore, at least
GOAL_RSS_MIB=128
# Goals of issue 14 (the speed of the disk).
GOAL_FLOOR_PUSH=1.25    # cas push / the floor (dd conv=fsync; b3sum 2 procs + dd of the concatenation)
GOAL_FLOOR_RESTORE=1.5  # cas restore / cp
GOAL_FLOOR_HASH=1.5     # cas hash / b3sum --num-threads 2
GOAL_RESTIC_X=4         # restic backup / cas push and restic restore / cas restore, at least
GOAL_CPU_PER_GIB=1.65   # CPU seconds (user + system) per GiB pushed: half of 3.3
# Goals of issue 3 (S3 remote, beside aws s3 cp on the same versitygw).
GOAL_S3_PUSH_BIG=0.8    # cas push --to / aws s3 cp upload
GOAL_S3_RESTORE_BIG=0.8 # cas restore from the remote / aws s3 cp download
GOAL_S3_TREE_DIV=50     # cas push --to of the tree <= (aws s3 cp --recursive) / 50
GOAL_S3_OBJECTS=100     # objects the tree push creates on the bucket
GOAL_S3_ONE_REQS=10     # requests to restore one small file from the tree, fewer than
S3=${BENCH_S3:-1}
# Goals of issue 5 (a fine-tuning checkpoint series, beside restic).
GOAL_CKPT_STORED=1.03 # stored bytes / unique tensor bytes (plus metadata)
CKPT=${BENCH_CKPT:-1}
# Goals of issue 15 (float tensors: stored / raw, and push/restore time).
GOAL_FLOAT_BF16=0.70
GOAL_FLOAT_FP32=0.85
GOAL_FLOAT_FP16=0.87
GOAL_FLOAT_MAX=1.001
GOAL_FLOAT_PUSH_X=1.0    # push with the codec / push without it
GOAL_FLOAT_RESTORE_X=1.2 # restore with the codec / restore without it
FLOAT=${BENCH_FLOAT:-1}

die() { echo "bench: FAIL: $*" >&2; exit 1; }
say() { echo "bench: $*" >&2; }

# ---------------------------------------------------------------- tools
need_tools() {
	local missing=()
	command -v b3sum >/dev/null || missing+=(b3sum)
	command -v restic >/dev/null || missing+=(restic)
	[[ -x /usr/bin/time ]] || missing+=(time)
	command -v go >/dev/null || die "go is not installed"
	if [[ $S3 == 1 ]] && ! command -v aws >/dev/null; then missing+=(awscli); fi
	((${#missing[@]} == 0)) && return
	say "installing ${missing[*]} with apt-get"
	local sudo=()
	(($(id -u) == 0)) || sudo=(sudo)
	"${sudo[@]}" apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
need_tools
if [[ $S3 == 1 ]]; then
	VERSITYGW=$(command -v versitygw || echo "$(go env GOPATH)/bin/versitygw")
	if [[ ! -x $VERSITYGW ]]; then
		say "versitygw is missing: installing it with scripts/deps.sh"
		bash "$ROOT/scripts/deps.sh" || die "scripts/deps.sh failed"
	fi
	[[ -x $VERSITYGW ]] || die "versitygw not found on PATH or in \$(go env GOPATH)/bin"
	# The real aws script, not a pyenv shim, whose start-up would be timed too.
	AWS=$(pyenv which aws 2>/dev/null || command -v aws)
fi

load1() { cut -d' ' -f1 /proc/loadavg; }
LOAD_START=$(load1)
if awk -v l="$LOAD_START" 'BEGIN {exit !(l > 0.5)}'; then
	say "warning: load average is $LOAD_START before the run; other work on this machine will skew the figures"
fi

# ---------------------------------------------------------------- work dir
mkdir -p "${BENCH_DIR:-/tmp}"
W=$(mktemp -d "${BENCH_DIR:-/tmp}/cas-bench.XXXXXX")
GW_PID=
stop_gw() {
	if [[ -n $GW_PID ]]; then
		kill "$GW_PID" 2>/dev/null || true
		wait "$GW_PID" 2>/dev/null || true
		GW_PID=
	fi
}
cleanup() {
	local rc=$?
	stop_gw
	if [[ ${BENCH_KEEP:-0} == 1 ]]; then
		say "work directory kept: $W"
	else
		rm -rf "$W"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$W/bin" "$W/st" "$W/rr" "$W/out" "$W/log"
export RESTIC_PASSWORD=cas-bench RESTIC_CACHE_DIR="$W/restic-cache"
RESULTS=$W/results # lines: key wall_s peak_rss_kib

say "building cas and gendata"
(cd "$ROOT" && go build -o "$W/bin/cas" . && go build -o "$W/bin/gendata" ./scripts/gendata) ||
	die "build failed"
CAS=$W/bin/cas
if [[ -n ${BENCH_BASELINE:-} ]]; then
	say "building cas at $BENCH_BASELINE (baseline)"
	mkdir -p "$W/base-src"
	(cd "$ROOT" && git archive "$BENCH_BASELINE") | tar -x -C "$W/base-src" || die "git archive $BENCH_BASELINE failed"
	(cd "$W/base-src" && go build -o "$W/bin/cas-base" .) || die "build of $BENCH_BASELINE failed"
	rm -rf "$W/base-src"
fi

say "generating data: ${SIZE_MB} MiB file, $FILES files in $DIRS directories (in $W)"
"$W/bin/gendata" -out "$W/data" -size-mb "$SIZE_MB" -files "$FILES" -dirs "$DIRS" || die "gendata failed"
BIG=$W/data/big.bin
TREE=$W/data/tree
TREE_BYTES=$(find "$TREE" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
BATCH=$(((FILES + 9) / 10)) # 10 b3sum invocations over 2 processes

# ---------------------------------------------------------------- helpers

# timed KEY OUT CMD... runs CMD once with stdout to OUT, and appends
# "KEY wall_s peak_rss_kib cpu_s" to $RESULTS (cpu = user + system of CMD and
# its children). Any failure ends the benchmark.
timed() {
	local key=$1 out=$2
	shift 2
	local t0 t1
	t0=$EPOCHREALTIME
	if ! /usr/bin/time -f '%M %U %S' -o "$W/log/time" "$@" >"$out" 2>"$W/log/stderr"; then
		cat "$W/log/stderr" >&2
		die "$key: command failed: $*"
	fi
	t1=$EPOCHREALTIME
	tail -n 1 "$W/log/time" | awk -v k="$key" -v a="$t0" -v b="$t1" \
		'{printf "%s %.3f %d %.2f\n", k, b - a, $1, $2 + $3}' >>"$RESULTS"
	say "  $key: $(tail -n 1 "$RESULTS" | awk '{printf "%.3f s, %.1f MiB, cpu %.2f s", $2, $3 / 1024, $4}')"
}

# median KEY [field]: median of field 2 (wall), 3 (rss) or 4 (cpu) over the runs of KEY.
median() {
	awk -v k="$1" -v f="${2:-2}" '$1 == k {print $f}' "$RESULTS" | sort -g |
		awk '{v[NR] = $1} END {if (NR == 0) exit 1; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
maxof() { awk -v k="$1" '$1 == k && $3 > m {m = $3} END {print m + 0}' "$RESULTS"; }
minof() { awk -v k="$1" '$1 == k && (m == "" || $2 < m) {m = $2} END {print m}' "$RESULTS"; }
maxwall() { awk -v k="$1" '$1 == k && $2 > m {m = $2} END {print m}' "$RESULTS"; }

json_str() { grep -o "\"$1\": *\"[^\"]*\"" "$2" | head -n 1 | sed 's/.*: *"\(.*\)"/\1/'; }
json_num() { grep -o "\"$1\": *[0-9]*" "$2" | head -n 1 | sed 's/.*: *//'; }

# warm reads every byte of its arguments so all tools start with a warm page cache.
warm() { find "$@" -type f -print0 | xargs -0 cat >/dev/null; }

new_store() { # new_store DIR: a fresh initialised cas store, outside the timing
	rm -rf "$1"
	CAS_DIR=$1/.cas "$CAS" init >/dev/null 2>"$W/log/init" || { cat "$W/log/init" >&2; die "cas init failed"; }
}
new_restic() { # new_restic DIR
	rm -rf "$1"
	restic -r "$1" init --quiet >/dev/null 2>"$W/log/init" || { cat "$W/log/init" >&2; die "restic init failed"; }
}
settle() { sync; } # write back dirty pages of the previous run outside the timing

# ---------------------------------------------------------------- case 1: push of the big file
say "case push-big: cas push vs b3sum vs restic backup ($RUNS runs each)"
warm "$BIG"
BIG_B3=$(b3sum --no-names "$BIG")
for ((i = 1; i <= RUNS; i++)); do
	s=$W/st/big$i
	new_store "$s"
	settle
	CAS_DIR=$s/.cas timed cas.push_big "$W/log/push_big.json" "$CAS" push "$BIG" --json --quiet
	d=$(json_str digest "$W/log/push_big.json")
	[[ $d == "blake3:$BIG_B3" ]] || die "cas push digest $d differs from b3sum $BIG_B3"
	if ((i == 1)); then
		CAS_DIR=$s/.cas "$CAS" verify "$d" >/dev/null 2>"$W/log/verify" || { cat "$W/log/verify" >&2; die "cas verify failed"; }
		cp "$W/log/push_big.json" "$W/log/push_big.first.json"
	fi
	if ((i < RUNS)); then rm -rf "$s"; fi # the last store serves the restore case

	settle
	timed b3sum.big "$W/log/b3sum_big" b3sum "$BIG"
	[[ $(cut -d' ' -f1 "$W/log/b3sum_big") == "$BIG_B3" ]] || die "b3sum output changed between runs"

	# The floors of issue 14: the same bytes written durably, and hashed.
	settle
	timed floor.dd_big /dev/null dd if="$BIG" of="$W/out/dd_big" bs=4M conv=fsync status=none
	rm -f "$W/out/dd_big"
	timed cas.hash_big "$W/log/hash_big" "$CAS" hash "$BIG"
	grep -q "$BIG_B3" "$W/log/hash_big" || die "cas hash printed $(head -c 200 "$W/log/hash_big"), want $BIG_B3"
	timed b3sum.big_2t "$W/log/b3sum_big" b3sum --num-threads 2 "$BIG"
	[[ $(cut -d' ' -f1 "$W/log/b3sum_big") == "$BIG_B3" ]] || die "b3sum --num-threads 2 printed another digest"

	r=$W/rr/big$i
	new_restic "$r"
	settle
	timed restic.backup_big /dev/null restic -r "$r" backup --quiet "$BIG"
	if ((i < RUNS)); then rm -rf "$r"; fi
done
BIG_DIGEST="blake3:$BIG_B3"
BIG_STORE=$W/st/big$RUNS
BIG_RESTIC=$W/rr/big$RUNS

# ---------------------------------------------------------------- case 2: push of the small-file tree
say "case push-tree: cas push vs b3sum (2 processes) vs restic backup ($RUNS runs each)"
# The floor's write half: the tree's bytes as one file, written durably.
(cd "$TREE" && find . -type f -print0 | sort -z | xargs -0 cat) >"$W/data/tree.cat" || die "could not concatenate the tree"
warm "$TREE"
for ((i = 1; i <= RUNS; i++)); do
	s=$W/st/tree$i
	new_store "$s"
	settle
	CAS_DIR=$s/.cas timed cas.push_tree "$W/log/push_tree.json" "$CAS" push "$TREE" --json --quiet
	d=$(json_str digest "$W/log/push_tree.json")
	[[ $d == blake3:* ]] || die "cas push printed no digest"
	[[ $(json_num files "$W/log/push_tree.json") == "$FILES" ]] || die "cas push counted $(json_num files "$W/log/push_tree.json") files, want $FILES"
	if ((i == 1)); then
		TREE_DIGEST=$d
		cp "$W/log/push_tree.json" "$W/log/push_tree.first.json"
		CAS_DIR=$s/.cas "$CAS" verify "$d" >/dev/null 2>"$W/log/verify" || { cat "$W/log/verify" >&2; die "cas verify failed"; }
		CAS_DIR=$s/.cas "$CAS" restore "$d" "$W/out/tree" --quiet 2>"$W/log/restore" || { cat "$W/log/restore" >&2; die "cas restore of the tree failed"; }
		diff -r "$TREE" "$W/out/tree" >"$W/log/diff" || { head -n 20 "$W/log/diff" >&2; die "restored tree differs from the pushed tree"; }
		rm -rf "$W/out/tree"
	fi
	[[ $d == "$TREE_DIGEST" ]] || die "tree digest changed between runs: $d vs $TREE_DIGEST"
	if ((i < RUNS)); then rm -rf "$s"; fi # the last store serves the re-push case

	settle
	# shellcheck disable=SC2016 # expanded by the inner bash
	timed b3sum.tree2p /dev/null bash -c 'set -o pipefail; cd "$1" && find . -type f -print0 | xargs -0 -P2 -n "$2" b3sum' _ "$TREE" "$BATCH"
	settle
	timed floor.dd_tree /dev/null dd if="$W/data/tree.cat" of="$W/out/dd_tree" bs=4M conv=fsync status=none
	rm -f "$W/out/dd_tree"

	r=$W/rr/tree$i
	new_restic "$r"
	settle
	timed restic.backup_tree /dev/null restic -r "$r" backup --quiet "$TREE"
	rm -rf "$r"
done
TREE_STORE=$W/st/tree$RUNS
rm -f "$W/data/tree.cat"

# ---------------------------------------------------------------- case 3: re-push of the unchanged tree
say "case re-push: cas push of the unchanged tree into the same store ($RUNS runs)"
settle
for ((i = 1; i <= RUNS; i++)); do
	CAS_DIR=$TREE_STORE/.cas timed cas.repush_tree "$W/log/repush.json" "$CAS" push "$TREE" --json --quiet
	d=$(json_str digest "$W/log/repush.json")
	[[ $d == "$TREE_DIGEST" ]] || die "re-push digest $d differs from first push $TREE_DIGEST"
	nb=$(json_num new_bytes "$W/log/repush.json")
	[[ -z $nb || $nb == 0 ]] || die "re-push of an unchanged tree reports new_bytes=$nb"
done
rm -rf "$TREE_STORE"

# ---------------------------------------------------------------- case 4: restore of the big file
say "case restore-big: cas restore vs restic restore ($RUNS runs each)"
BIG_REL=${BIG#/} # restic restores the absolute path below --target
for ((i = 1; i <= RUNS; i++)); do
	o=$W/out/cas$i
	settle
	CAS_DIR=$BIG_STORE/.cas timed cas.restore_big /dev/null "$CAS" restore "$BIG_DIGEST" "$o" --quiet
	if [[ -d $o ]]; then o=$o/big.bin; fi # accept either a file or a directory holding it
	cmp "$BIG" "$o" || die "cas restore wrote different bytes"
	rm -rf "$W/out/cas$i"

	settle
	timed floor.cp_big /dev/null cp "$BIG" "$W/out/cp_big"
	rm -f "$W/out/cp_big"

	o=$W/out/restic$i
	settle
	timed restic.restore_big /dev/null restic -r "$BIG_RESTIC" restore latest --target "$o" --quiet
	cmp "$BIG" "$o/$BIG_REL" || die "restic restore wrote different bytes"
	rm -rf "$o"
done

# ---------------------------------------------------------------- baseline: local pushes with an older cas
if [[ -n ${BENCH_BASELINE:-} ]]; then
	say "case baseline: cas@$BENCH_BASELINE push of the big file and the tree ($RUNS runs each)"
	warm "$BIG" "$TREE"
	for ((i = 1; i <= RUNS; i++)); do
		s=$W/st/base
		new_store "$s"
		settle
		CAS_DIR=$s/.cas timed base.push_big /dev/null "$W/bin/cas-base" push "$BIG" --quiet
		new_store "$s"
		settle
		CAS_DIR=$s/.cas timed base.push_tree /dev/null "$W/bin/cas-base" push "$TREE" --quiet
		rm -rf "$s"
	done
fi

# ---------------------------------------------------------------- S3: versitygw and aws s3 cp
if [[ $S3 == 1 ]]; then
	GW_DIR=$W/s3
	mkdir -p "$GW_DIR" "$W/aws"
	GW_KEY=cas-bench
	GW_SECRET=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	# A clean AWS environment: these keys and region, no profile or config of the user.
	unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_DEFAULT_PROFILE
	# Nor versitygw settings of the user's environment (VGW_*), which could change its port.
	while read -r v; do unset "$v"; done < <(compgen -e | grep '^VGW_' || true)
	: >"$W/aws/config"
	export AWS_ACCESS_KEY_ID=$GW_KEY AWS_SECRET_ACCESS_KEY=$GW_SECRET AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
		AWS_CONFIG_FILE=$W/aws/config AWS_SHARED_CREDENTIALS_FILE=$W/aws/config

	# start_gw starts versitygw on a free 127.0.0.1 port, like remote/s3test: keys
	# in the environment (not on the command line), requests logged one a line
	# to $W/log/gw (counted by the one-file restore case).
	start_gw() {
		local try port
		for ((try = 1; try <= 5; try++)); do
			port=$((20000 + RANDOM % 40000))
			if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi # taken
			env ROOT_ACCESS_KEY="$GW_KEY" ROOT_SECRET_KEY="$GW_SECRET" \
				"$VERSITYGW" --region us-east-1 --port "127.0.0.1:$port" posix "$GW_DIR" >"$W/log/gw" 2>&1 &
			GW_PID=$!
			local t
			for ((t = 0; t < 300; t++)); do
				if ! kill -0 "$GW_PID" 2>/dev/null; then break; fi
				if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
					ENDPOINT=http://127.0.0.1:$port
					return 0
				fi
				sleep 0.05
			done
			stop_gw
			grep -q "address already in use" "$W/log/gw" || break
		done
		cat "$W/log/gw" >&2
		die "versitygw did not start"
	}
	start_gw
	say "versitygw on $ENDPOINT over $GW_DIR"
	awsq() { "$AWS" --endpoint-url "$ENDPOINT" "$@"; }
	mkbucket() { awsq s3 mb "s3://$1" >/dev/null 2>"$W/log/mb" || { cat "$W/log/mb" >&2; die "aws s3 mb $1 failed"; }; }
	dropbucket() { rm -rf "${GW_DIR:?}/$1"; } # the posix backend keeps a bucket in one directory
	count_objects() { awsq s3 ls --recursive "s3://$1/" | wc -l; }
	remote_store() { # remote_store DIR BUCKET: a fresh store that knows only the remote
		new_store "$1"
		CAS_DIR=$1/.cas "$CAS" remote add origin "s3://$2/cas" --endpoint "$ENDPOINT" >/dev/null 2>"$W/log/remote" ||
			{ cat "$W/log/remote" >&2; die "cas remote add failed"; }
	}
	# gw_requests prints how many requests the server has logged, once its log
	# has stopped growing (it is written behind the requests).
	gw_requests() {
		local a b=-1 t
		for ((t = 0; t < 50; t++)); do
			a=$(grep -c ' | vgw | ' "$W/log/gw" || true)
			[[ $a == "$b" ]] && break
			b=$a
			sleep 0.1
		done
		echo "$a"
	}
	# gw_methods FROM: the requests logged after the first FROM, by method, e.g. "PUT 14, HEAD 15".
	gw_methods() {
		grep ' | vgw | ' "$W/log/gw" | tail -n "+$(($1 + 1))" | awk -F' [|] ' '{m = $6; gsub(/ /, "", m); if (m !~ /^[A-Z]+$/) m = "?"; n[m]++; t++} END {
			printf "%d requests:", t; for (m in n) printf " %s %d", m, n[m]; printf "\n"}'
	}

	# ------------------------------------------------------------ S3 case 1: push of the big file
	say "case s3-push-big: cas push --to origin vs aws s3 cp ($RUNS runs each)"
	warm "$BIG"
	for ((i = 1; i <= RUNS; i++)); do
		b=cas-big-$i
		mkbucket "$b"
		s=$W/st/s3big$i
		remote_store "$s" "$b"
		settle
		r0=$(gw_requests)
		CAS_DIR=$s/.cas timed cas.s3push_big "$W/log/s3push_big.json" "$CAS" push "$BIG" --to origin --json --quiet
		((i == 1)) && gw_methods "$r0" >"$W/log/req.s3push_big"
		d=$(json_str digest "$W/log/s3push_big.json")
		[[ $d == "$BIG_DIGEST" ]] || die "cas push --to digest $d differs from b3sum $BIG_DIGEST"
		((i == 1)) && cp "$W/log/s3push_big.json" "$W/log/s3push_big.first.json"
		rm -rf "$s"
		if ((i < RUNS)); then dropbucket "$b"; fi # the last bucket serves the restore case

		b=aws-big-$i
		mkbucket "$b"
		settle
		timed aws.s3cp_up /dev/null "$AWS" --endpoint-url "$ENDPOINT" s3 cp --only-show-errors "$BIG" "s3://$b/big.bin"
		if ((i < RUNS)); then dropbucket "$b"; fi
	done
	S3_BIG_BUCKET=cas-big-$RUNS
	AWS_BIG_BUCKET=aws-big-$RUNS
	S3_BIG_OBJECTS=$(count_objects "$S3_BIG_BUCKET")

	# ------------------------------------------------------------ S3 case 2: restore of the big file
	say "case s3-restore-big: cas restore from the remote into an empty store vs aws s3 cp download ($RUNS runs each)"
	for ((i = 1; i <= RUNS; i++)); do
		s=$W/st/s3restore
		remote_store "$s" "$S3_BIG_BUCKET"
		o=$W/out/s3cas$i
		settle
		r0=$(gw_requests)
		CAS_DIR=$s/.cas timed cas.s3restore_big /dev/null "$CAS" restore "$BIG_DIGEST" "$o" --quiet
		((i == 1)) && gw_methods "$r0" >"$W/log/req.s3restore_big"
		if [[ -d $o ]]; then o=$o/big.bin; fi
		cmp "$BIG" "$o" || die "cas restore from the remote wrote different bytes"
		rm -rf "$W/out/s3cas$i" "$s"

		o=$W/out/s3aws$i
		settle
		timed aws.s3cp_down /dev/null "$AWS" --endpoint-url "$ENDPOINT" s3 cp --only-show-errors "s3://$AWS_BIG_BUCKET/big.bin" "$o"
		cmp "$BIG" "$o" || die "aws s3 cp download wrote different bytes"
		rm -f "$o"
	done
	dropbucket "$S3_BIG_BUCKET"
	dropbucket "$AWS_BIG_BUCKET"

	# ------------------------------------------------------------ S3 case 3: push of the tree
	SLICE=$(((FILES + 9) / 10))
	SCALE=$(awk -v f="$FILES" -v s="$SLICE" 'BEGIN {printf "%.4f", f / s}')
	say "case s3-push-tree: cas push --to origin of $FILES files vs aws s3 cp --recursive of $SLICE files, x$SCALE ($RUNS runs each)"
	mkdir -p "$W/data/slice"
	(cd "$TREE" && find . -type f -print0 | sort -z | awk -v RS='\0' -v ORS='\0' -v n="$SLICE" 'NR <= n' | xargs -0 cp --parents -l -t "$W/data/slice") ||
		die "could not make the $SLICE-file slice"
	warm "$TREE"
	for ((i = 1; i <= RUNS; i++)); do
		b=cas-tree-$i
		mkbucket "$b"
		s=$W/st/s3tree$i
		remote_store "$s" "$b"
		settle
		r0=$(gw_requests)
		CAS_DIR=$s/.cas timed cas.s3push_tree "$W/log/s3push_tree.json" "$CAS" push "$TREE" --to origin --json --quiet
		((i == 1)) && gw_methods "$r0" >"$W/log/req.s3push_tree"
		d=$(json_str digest "$W/log/s3push_tree.json")
		[[ $d == "$TREE_DIGEST" ]] || die "cas push --to tree digest $d differs from $TREE_DIGEST"
		n=$(count_objects "$b")
		echo "cas.s3tree_objects $n 0 0" >>"$RESULTS"
		((i == 1)) && cp "$W/log/s3push_tree.json" "$W/log/s3push_tree.first.json"
		rm -rf "$s"
		if ((i < RUNS)); then dropbucket "$b"; fi # the last bucket serves the one-file case

		b=aws-tree-$i
		mkbucket "$b"
		settle
		timed aws.s3cp_slice /dev/null "$AWS" --endpoint-url "$ENDPOINT" s3 cp --recursive --only-show-errors "$W/data/slice" "s3://$b/slice"
		n=$(count_objects "$b")
		((n == SLICE)) || die "aws s3 cp --recursive created $n objects, want $SLICE"
		dropbucket "$b"
	done
	S3_TREE_BUCKET=cas-tree-$RUNS

	# ------------------------------------------------------------ S3 case 4: restore of one small file
	ONE=$(cd "$TREE" && find . -type f -printf '%s %P\n' | sort -k1,1nr -k2 | awk 'NR == 1 {sub(/^[0-9]+ /, ""); print}')
	ONE_SIZE=$(stat -c %s "$TREE/$ONE")
	say "case s3-restore-one: cas restore TREE:$ONE ($ONE_SIZE bytes) from the remote into an empty store ($RUNS runs)"
	for ((i = 1; i <= RUNS; i++)); do
		s=$W/st/s3one
		remote_store "$s" "$S3_TREE_BUCKET"
		o=$W/out/one$i
		before=$(gw_requests)
		CAS_DIR=$s/.cas timed cas.s3restore_one /dev/null "$CAS" restore "$TREE_DIGEST:$ONE" "$o" --quiet
		after=$(gw_requests)
		echo "cas.s3one_requests $((after - before)) 0 0" >>"$RESULTS"
		((i == 1)) && gw_methods "$before" >"$W/log/req.s3restore_one"
		if [[ -d $o ]]; then o=$o/$(basename "$ONE"); fi
		cmp "$TREE/$ONE" "$o" || die "cas restore of one file from the remote wrote different bytes"
		rm -rf "$W/out/one$i" "$s"
	done
	dropbucket "$S3_TREE_BUCKET"
	stop_gw
fi

# ---------------------------------------------------------------- case: checkpoint series (issue 5)
# A fine-tuning run that freezes its backbone: four torch-style checkpoints
# (scripts/genckpt) pushed one after the other into a fresh cas store and
# backed up into a fresh restic repository. What counts is what each keeps.
if [[ $CKPT == 1 ]]; then
	say "case ckpt-series: four fine-tuning checkpoints into cas and restic"
	ckmb=256
	[[ ${BENCH_QUICK:-0} == 1 ]] && ckmb=32
	CK=$W/data/ckpt
	gen=$(cd "$ROOT" && go run ./scripts/genckpt -out "$CK" -backbone-mb "$ckmb") || die "genckpt failed"
	CK_UNIQUE=${gen##*unique=}
	CK_BYTES=${gen#*bytes=}
	CK_BYTES=${CK_BYTES%% *}
	warm "$CK"
	s=$W/st/ckpt
	new_store "$s"
	settle
	for f in "$CK"/epoch*.pt; do
		CAS_DIR=$s/.cas timed cas.ckpt_push "$W/log/ckpt_push.json" "$CAS" push "$f" --json --quiet
	done
	CAS_DIR=$s/.cas "$CAS" stats --json >"$W/log/ckpt_stats.json"
	CK_CAS=$(json_num stored_bytes "$W/log/ckpt_stats.json")
	CK_CHUNKS=$(json_num chunks "$W/log/ckpt_stats.json")
	cks=("$CK"/epoch*.pt)
	last=${cks[-1]}
	CAS_DIR=$s/.cas "$CAS" restore "blake3:$(b3sum --no-names "$last")" "$W/out/ckpt.pt" --quiet
	cmp "$last" "$W/out/ckpt.pt" || die "cas restore of a checkpoint wrote different bytes"
	r=$W/st/ckpt_restic
	new_restic "$r"
	settle
	for f in "$CK"/epoch*.pt; do
		timed restic.ckpt_backup /dev/null restic -r "$r" backup "$f" --quiet
	done
	CK_RESTIC=$(du -sb "$r" | cut -f1)
	rm -rf "$s" "$r" "$CK" "$W/out/ckpt.pt"
fi

# ---------------------------------------------------------------- case: float tensors (issue 15)
# Checkpoints written by real PyTorch (scripts/genckpt/floats.py: generated
# weights, not downloaded; Adam state of a real optimizer) and the shared
# fixtures: stored / raw for cas, zstd -3, zstd -19 and a byte-grouping +
# LZ4 baseline (scripts/floatbase), then push and restore of a BF16
# checkpoint of BENCH_SIZE_MB with the codec and without it
# (CAS_NO_FLOAT_CODEC=1: today's code path), timed alternately.
FLOAT_ROWS=$W/log/float_rows
if [[ $FLOAT == 1 ]]; then
	if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
		say "case float: skipped, /usr/bin/python3 has no torch (apt-get install python3-torch)"
		FLOAT=0
	fi
fi
if [[ $FLOAT == 1 ]]; then
	say "case float: checkpoints by torch, cas beside zstd and byte-grouping + LZ4"
	FD=$W/data/float
	fmb=64
	[[ ${BENCH_QUICK:-0} == 1 ]] && fmb=8
	/usr/bin/python3 "$ROOT/scripts/genckpt/floats.py" "$FD" --mb "$fmb" --big-mb "$SIZE_MB" >"$W/log/floats.gen" ||
		die "scripts/genckpt/floats.py failed"
	for f in /work/shared/fixtures/torch/*.pt; do
		[[ -f $f ]] && cp "$f" "$FD/fixture_$(basename "$f")"
	done
	(cd "$ROOT" && go build -o "$W/bin/floatbase" ./scripts/floatbase) || die "build of scripts/floatbase failed"
	: >"$FLOAT_ROWS"
	for f in "$FD"/*.pt; do
		[[ $(basename "$f") == big_bf16.pt ]] && continue
		s=$W/st/float
		new_store "$s"
		CAS_DIR=$s/.cas "$CAS" push "$f" --quiet >/dev/null || die "cas push $f failed"
		CAS_DIR=$s/.cas "$CAS" stats --json >"$W/log/float_stats.json"
		# Stored and raw bytes of the data chunks (no pack trailers, no trees).
		read -r craw cstored < <(python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["codecs"]; print(sum(x["raw_bytes"] for x in c), sum(x["stored_bytes"] for x in c))' "$W/log/float_stats.json")
		z3=$(zstd -3 -c -q "$f" | wc -c)
		z19=$(zstd -19 -c -q "$f" | wc -c)
		read -r _ raw lz ent < <("$W/bin/floatbase" "$f")
		echo "$(basename "$f") $raw $craw $cstored $z3 $z19 $lz $ent" >>"$FLOAT_ROWS"
		rm -rf "$s"
	done
	big=$FD/big_bf16.pt
	warm "$big"
	bigd=blake3:$(b3sum --no-names "$big")
	for ((i = 0; i < RUNS; i++)); do
		for mode in off on; do
			s=$W/st/float_$mode
			new_store "$s"
			settle
			env=()
			[[ $mode == off ]] && env=(CAS_NO_FLOAT_CODEC=1)
			CAS_DIR=$s/.cas timed "cas.float_push_$mode" /dev/null env "${env[@]}" "$CAS" push "$big" --quiet
			settle
			rm -f "$W/out/big_bf16.pt"
			CAS_DIR=$s/.cas timed "cas.float_restore_$mode" /dev/null "$CAS" restore "$bigd" "$W/out/big_bf16.pt" --quiet
			cmp "$big" "$W/out/big_bf16.pt" || die "cas restore of $big ($mode) wrote different bytes"
			CAS_DIR=$s/.cas "$CAS" stats --json >"$W/log/float_big_$mode.json"
			rm -rf "$s" "$W/out/big_bf16.pt"
		done
	done
	FLOAT_BIG_ON=$(json_num stored_bytes "$W/log/float_big_on.json")
	FLOAT_BIG_OFF=$(json_num stored_bytes "$W/log/float_big_off.json")
	rm -rf "$FD"
fi

# ---------------------------------------------------------------- case: float codec speed (issue 15)
# The codec's speed per core (goals: encode >= 0.8 GB/s, decode >= 1.5 GB/s)
# beside its floor, huff0 alone on the high bytes of the same 16-bit tensors
# (BenchmarkFloatBesideFloor runs the two in turn, 16 MiB at a time, so that
# both meet the machine in the same mood), and FP32 alone; on one core, as
# CPU time of the benchmark's thread. Needs no torch: the weights are drawn
# in Go. BENCH_RUNS runs, medians.
FLOAT_SPEED=${BENCH_FLOAT:-1}
if [[ $FLOAT_SPEED == 1 ]]; then
	say "case float speed: the codec per core, beside huff0 alone"
	(cd "$ROOT" && go test -c -o "$W/bin/format.test" ./cas/format) || die "build of the cas/format benchmarks failed"
	for ((i = 0; i < RUNS; i++)); do
		(cd "$W" && "$W/bin/format.test" -test.run '^$' -test.bench 'FloatBesideFloor|EncodeFloat/FP32$|DecodeFloat/FP32$' \
			-test.cpu 1 -test.benchtime 20x) >"$W/log/floatspeed" || die "the float codec benchmarks failed"
		# "BenchmarkX/T  N  ns ns/op  v1 unit1  v2 unit2 ...": one line of RESULTS per value.
		awk '/^Benchmark/ {n = $1; sub(/^Benchmark/, "", n); for (k = 5; k < NF; k += 2) print "fspeed." n "." $(k + 1), $k}' \
			"$W/log/floatspeed" >>"$RESULTS"
		say "  $(awk '/^Benchmark/ {printf "%s ", $1}' "$W/log/floatspeed")"
	done
fi

# ---------------------------------------------------------------- report
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a <= b)}'; }
pf() { if "$@"; then echo PASS; else echo FAIL; fi; }

cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
rev=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo "no commit")
S3INFO=
if [[ $S3 == 1 ]]; then
	S3INFO=$'\n'"S3:      versitygw $(go version -m "$VERSITYGW" 2>/dev/null | awk '$1 == "mod" {print $3}') on 127.0.0.1 (posix backend in the work directory), $("$AWS" --version 2>&1 | cut -d' ' -f1-2)"
fi
cat <<EOF

== cas benchmark ($(date -u +%Y-%m-%dT%H:%MZ))
machine: $(nproc) cores, $cpu, $mem RAM, Linux $(uname -r)
tools:   $(go version | cut -d' ' -f3-), $(b3sum --version), $(restic version | cut -d' ' -f1-2), cas @ $rev${S3INFO}
data:    big.bin $SIZE_MB MiB (incompressible); tree $FILES files, $DIRS dirs, $(mib $((TREE_BYTES / 1024))) MiB
runs:    $RUNS per tool and case, median wall time, page cache warm, peak RSS from /usr/bin/time
load:    1-minute load average $LOAD_START before the run, $(load1) after (the run itself adds about 1)

EOF

c1=$(median cas.push_big) p1=$(median b3sum.big)
c2=$(median cas.push_tree) p2=$(median b3sum.tree2p)
c3=$(median cas.repush_tree)
c4=$(median cas.restore_big) p4=$(median restic.restore_big)
r1=$(ratio "$c1" "$p1") r2=$(ratio "$c2" "$p2") r4=$(ratio "$c4" "$p4")
g4=$(awk -v x=$GOAL_RESTORE_X 'BEGIN {printf "%.3f", 1 / x}')

fmt='%-22s %8s  %-18s %8s  %8s  %-12s %-5s %9s  %-5s\n'
printf "$fmt" case "cas s" peer "peer s" cas/peer goal result "RSS MiB" "<=${GOAL_RSS_MIB}"
rssrow() { local k; k=$(maxof "$1"); echo "$(mib "$k") $(pf le "$k" $((GOAL_RSS_MIB * 1024)))"; }
read -r m1 q1 <<<"$(rssrow cas.push_big)"
read -r m2 q2 <<<"$(rssrow cas.push_tree)"
read -r m3 q3 <<<"$(rssrow cas.repush_tree)"
read -r m4 q4 <<<"$(rssrow cas.restore_big)"
printf "$fmt" "push ${SIZE_MB} MiB file" "$c1" "b3sum" "$p1" "$r1" "<= ${GOAL_PUSH_BIG}x" "$(pf le "$r1" $GOAL_PUSH_BIG)" "$m1" "$q1"
printf "$fmt" "push $FILES files" "$c2" "b3sum, 2 procs" "$p2" "$r2" "<= ${GOAL_PUSH_TREE}x" "$(pf le "$r2" $GOAL_PUSH_TREE)" "$m2" "$q2"
printf "$fmt" "re-push unchanged" "$c3" "-" "-" "-" "< ${GOAL_REPUSH_S} s" "$(pf awk -v a="$c3" -v b=$GOAL_REPUSH_S 'BEGIN {exit !(a < b)}')" "$m3" "$q3"
printf "$fmt" "restore ${SIZE_MB} MiB file" "$c4" "restic restore" "$p4" "$r4" "<= ${g4}x" "$(pf le "$r4" "$g4")" "$m4" "$q4"

# Issue 14: cas beside the speed of the disk.
f1=$(median floor.dd_big) f2=$(awk -v a="$p2" -v b="$(median floor.dd_tree)" 'BEGIN {printf "%.3f", a + b}')
f4=$(median floor.cp_big) c9=$(median cas.hash_big) f9=$(median b3sum.big_2t)
x1=$(ratio "$(median restic.backup_big)" "$c1") x2=$(ratio "$(median restic.backup_tree)" "$c2") x4=$(ratio "$p4" "$c4")
cpg=$(awk -v c="$(median cas.push_big 4)" -v m="$SIZE_MB" 'BEGIN {printf "%.2f", c / (m / 1024)}')
echo
echo "issue 14: cas beside the floor (the disk's own speed) and restic"
fmt3='%-22s %8s  %-24s %8s  %8s  %-9s %-5s  %8s  %-5s\n'
printf "$fmt3" case "cas s" floor "floor s" cas/floor goal result "restic/cas" ">=${GOAL_RESTIC_X}x"
ge() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a >= b)}'; }
printf "$fmt3" "push ${SIZE_MB} MiB file" "$c1" "dd conv=fsync" "$f1" "$(ratio "$c1" "$f1")" "<= ${GOAL_FLOOR_PUSH}x" "$(pf le "$(ratio "$c1" "$f1")" $GOAL_FLOOR_PUSH)" "$x1" "$(pf ge "$x1" $GOAL_RESTIC_X)"
printf "$fmt3" "push $FILES files" "$c2" "b3sum 2p + dd of concat" "$f2" "$(ratio "$c2" "$f2")" "<= ${GOAL_FLOOR_PUSH}x" "$(pf le "$(ratio "$c2" "$f2")" $GOAL_FLOOR_PUSH)" "$x2" "$(pf ge "$x2" $GOAL_RESTIC_X)"
printf "$fmt3" "restore ${SIZE_MB} MiB file" "$c4" "cp" "$f4" "$(ratio "$c4" "$f4")" "<= ${GOAL_FLOOR_RESTORE}x" "$(pf le "$(ratio "$c4" "$f4")" $GOAL_FLOOR_RESTORE)" "$x4" "$(pf ge "$x4" $GOAL_RESTIC_X)"
printf "$fmt3" "hash ${SIZE_MB} MiB file" "$c9" "b3sum --num-threads 2" "$f9" "$(ratio "$c9" "$f9")" "<= ${GOAL_FLOOR_HASH}x" "$(pf le "$(ratio "$c9" "$f9")" $GOAL_FLOOR_HASH)" "-" ""
printf "$fmt3" "CPU s per GiB pushed" "$cpg" "(user + system)" "-" "-" "<= ${GOAL_CPU_PER_GIB}" "$(pf le "$cpg" $GOAL_CPU_PER_GIB)" "-" ""
echo "  (the tree's floor: b3sum as 2 processes $p2 s + dd conv=fsync of the $(mib $((TREE_BYTES / 1024))) MiB concatenation $(median floor.dd_tree) s)"

if [[ $S3 == 1 ]]; then
	c5=$(median cas.s3push_big) p5=$(median aws.s3cp_up)
	c6=$(median cas.s3restore_big) p6=$(median aws.s3cp_down)
	c7=$(median cas.s3push_tree) p7=$(awk -v t="$(median aws.s3cp_slice)" -v x="$SCALE" 'BEGIN {printf "%.3f", t * x}')
	c8=$(median cas.s3restore_one)
	r5=$(ratio "$c5" "$p5") r6=$(ratio "$c6" "$p6") r7=$(ratio "$c7" "$p7")
	g7=$(awk -v d=$GOAL_S3_TREE_DIV 'BEGIN {printf "%.3f", 1 / d}')
	objs=$(awk '$1 == "cas.s3tree_objects" && $2 > m {m = $2} END {print m + 0}' "$RESULTS")
	reqs=$(awk '$1 == "cas.s3one_requests" && $2 > m {m = $2} END {print m + 0}' "$RESULTS")
	read -r m5 q5 <<<"$(rssrow cas.s3push_big)"
	read -r m6 q6 <<<"$(rssrow cas.s3restore_big)"
	read -r m7 q7 <<<"$(rssrow cas.s3push_tree)"
	read -r m8 q8 <<<"$(rssrow cas.s3restore_one)"
	printf "$fmt" "S3 push ${SIZE_MB} MiB" "$c5" "aws s3 cp up" "$p5" "$r5" "<= ${GOAL_S3_PUSH_BIG}x" "$(pf le "$r5" $GOAL_S3_PUSH_BIG)" "$m5" "$q5"
	printf "$fmt" "S3 restore ${SIZE_MB} MiB" "$c6" "aws s3 cp down" "$p6" "$r6" "<= ${GOAL_S3_RESTORE_BIG}x" "$(pf le "$r6" $GOAL_S3_RESTORE_BIG)" "$m6" "$q6"
	printf "$fmt" "S3 push $FILES files" "$c7" "aws cp -r x$SCALE" "$p7" "$r7" "<= ${g7}x" "$(pf le "$r7" "$g7")" "$m7" "$q7"
	printf "$fmt" "  objects created" "$objs" "-" "-" "-" "<= ${GOAL_S3_OBJECTS}" "$(pf le "$objs" $GOAL_S3_OBJECTS)" "" ""
	printf "$fmt" "S3 restore 1 file" "$c8" "-" "-" "-" "< ${GOAL_S3_ONE_REQS} reqs" "$(pf awk -v a="$reqs" -v b=$GOAL_S3_ONE_REQS 'BEGIN {exit !(a < b)}')" "$m8" "$q8"
	echo "  (S3 restore 1 file: $ONE, $ONE_SIZE bytes, $reqs requests at most; aws s3 cp --recursive of $SLICE files took $(median aws.s3cp_slice) s)"
fi

echo
echo "every timing (wall seconds: median, min, max; CPU seconds user+sys: median; peak RSS MiB: median, max)"
fmt2='%-20s %8s %8s %8s  %8s  %8s %8s\n'
printf "$fmt2" run median min max "CPU med" "RSS med" "RSS max"
for k in cas.push_big b3sum.big floor.dd_big restic.backup_big cas.push_tree b3sum.tree2p floor.dd_tree restic.backup_tree \
	cas.repush_tree cas.restore_big floor.cp_big restic.restore_big cas.hash_big b3sum.big_2t base.push_big base.push_tree \
	cas.s3push_big aws.s3cp_up cas.s3restore_big aws.s3cp_down cas.s3push_tree aws.s3cp_slice cas.s3restore_one \
	cas.float_push_on cas.float_push_off cas.float_restore_on cas.float_restore_off; do
	grep -q "^$k " "$RESULTS" || continue
	printf "$fmt2" "$k" "$(median $k)" "$(minof $k)" "$(maxwall $k)" "$(median $k 4)" "$(mib "$(median $k 3)")" "$(mib "$(maxof $k)")"
done
echo
echo "restic backup / cas push: big $(ratio "$(median restic.backup_big)" "$c1")x, tree $(ratio "$(median restic.backup_tree)" "$c2")x;" \
	"restic restore / cas restore: $(ratio "$p4" "$c4")x (goal >= ${GOAL_RESTORE_X}x)"
echo "CPU time cas/peer (user+sys; less sensitive to other load on the machine): push big $(ratio "$(median cas.push_big 4)" "$(median b3sum.big 4)")x," \
	"push tree $(ratio "$(median cas.push_tree 4)" "$(median b3sum.tree2p 4)")x, restore $(ratio "$(median cas.restore_big 4)" "$(median restic.restore_big 4)")x"
echo "first push of big.bin:  $(tr -d '\n' <"$W/log/push_big.first.json" | tr -s ' ')"
echo "first push of the tree: $(tr -d '\n' <"$W/log/push_tree.first.json" | tr -s ' ')"
echo "re-push of the tree:    $(tr -d '\n' <"$W/log/repush.json" | tr -s ' ')"
if [[ -n ${BENCH_BASELINE:-} ]]; then
	echo "cas@$BENCH_BASELINE (baseline) local push: big $(median base.push_big) s (now $c1 s, $(ratio "$c1" "$(median base.push_big)")x)," \
		"tree $(median base.push_tree) s (now $c2 s, $(ratio "$c2" "$(median base.push_tree)")x)"
fi
if [[ $S3 == 1 ]]; then
	echo "S3 push of big.bin, first run: $(tr -d '\n' <"$W/log/s3push_big.first.json" | tr -s ' ')"
	echo "S3 push of the tree, first run: $(tr -d '\n' <"$W/log/s3push_tree.first.json" | tr -s ' ')"
	echo "objects on the bucket: big.bin $S3_BIG_OBJECTS, tree $objs"
	echo "requests seen by versitygw (first run): push big $(cat "$W/log/req.s3push_big"); restore big $(cat "$W/log/req.s3restore_big");" \
		"push tree $(cat "$W/log/req.s3push_tree"); restore one file $(cat "$W/log/req.s3restore_one")"
fi
echo "bytes checked: push digests equal b3sum, restored tree equals the source (diff -r), restored files equal the source (cmp)," \
	"also those restored from the remote and downloaded by aws s3 cp"
if [[ $FLOAT == 1 ]]; then
	echo
	echo "float tensors (issue 15): stored / raw of torch checkpoints (weights generated, normal std 0.02; Adam state of a real optimizer)"
	fmt3='%-34s %10s %7s %7s %7s %7s %7s  %s\n'
	printf "$fmt3" file "raw KiB" cas "zstd-3" "zstd-19" "bg+lz4" entropy "goal"
	while read -r name raw craw cstored z3 z19 lz ent; do
		goal=$GOAL_FLOAT_MAX
		case $name in
		*bf16*) goal=$GOAL_FLOAT_BF16 ;;
		*fp32*) goal=$GOAL_FLOAT_FP32 ;;
		*fp16*) goal=$GOAL_FLOAT_FP16 ;;
		esac
		# cas: the file's chunks as stored over the file's bytes.
		c=$(awk -v r="$raw" -v cr="$craw" -v cs="$cstored" 'BEGIN {printf "%.3f", (r - cr + cs) / r}')
		printf "$fmt3" "$name" "$(awk -v r="$raw" 'BEGIN {printf "%.0f", r / 1024}')" "$c" "$(ratio "$z3" "$raw")" "$(ratio "$z19" "$raw")" \
			"$(ratio "$lz" "$raw")" "$(ratio "$ent" "$raw")" "<= $goal $(pf le "$c" "$goal")"
	done <"$FLOAT_ROWS"
	fp=$(median cas.float_push_on) fpo=$(median cas.float_push_off)
	fr=$(median cas.float_restore_on) fro=$(median cas.float_restore_off)
	echo "  ${SIZE_MB} MiB BF16 checkpoint: stored $(ratio "$FLOAT_BIG_ON" "$FLOAT_BIG_OFF")x of the store without the codec"
	echo "  push:    codec $fp s (CPU $(median cas.float_push_on 4) s), without $fpo s (CPU $(median cas.float_push_off 4) s): $(ratio "$fp" "$fpo")x (goal <= ${GOAL_FLOAT_PUSH_X}x $(pf le "$(ratio "$fp" "$fpo")" $GOAL_FLOAT_PUSH_X))"
	echo "  restore: codec $fr s (CPU $(median cas.float_restore_on 4) s), without $fro s (CPU $(median cas.float_restore_off 4) s): $(ratio "$fr" "$fro")x (goal <= ${GOAL_FLOAT_RESTORE_X}x $(pf le "$(ratio "$fr" "$fro")" $GOAL_FLOAT_RESTORE_X))"
fi
if [[ $FLOAT_SPEED == 1 ]]; then
	echo
	echo "float codec speed per core (issue 15), cpu-MB/s of the tensor's bytes, medians of $RUNS; floor: huff0 alone on the high bytes, run in turn with the codec"
	fmt4='%-6s %9s %9s %7s  %-20s %9s %9s %7s  %s\n'
	printf "$fmt4" dtype encode floor "/floor" "goal >= 800" decode floor "/floor" "goal >= 1500"
	r() { awk -v x="$1" -v p="$2" 'BEGIN {printf "%.*f", p, x}'; }
	for dt in BF16 FP16; do
		k=fspeed.FloatBesideFloor/$dt
		e=$(median "$k.enc-MB/s") d=$(median "$k.dec-MB/s")
		printf "$fmt4" "$dt" "$(r "$e" 0)" "$(r "$(median "$k.floor-enc-MB/s")" 0)" "$(r "$(median "$k.enc/floor")" 2)" "$(pf le 800 "$e")" \
			"$(r "$d" 0)" "$(r "$(median "$k.floor-dec-MB/s")" 0)" "$(r "$(median "$k.dec/floor")" 2)" "$(pf le 1500 "$d")"
	done
	e=$(median fspeed.EncodeFloat/FP32.cpu-MB/s) d=$(median fspeed.DecodeFloat/FP32.cpu-MB/s)
	printf "$fmt4" FP32 "$(r "$e" 0)" - - "$(pf le 800 "$e")" "$(r "$d" 0)" - - "$(pf le 1500 "$d")"
fi
if [[ $CKPT == 1 ]]; then
	echo
	echo "checkpoint series (issue 5): 4 checkpoints, $CK_BYTES bytes, $CK_UNIQUE unique bytes (each distinct tensor and pickle once)"
	echo "  cas stored $CK_CAS bytes = $(ratio "$CK_CAS" "$CK_UNIQUE")x unique (goal <= ${GOAL_CKPT_STORED}x plus metadata: $(pf le "$(ratio "$CK_CAS" "$CK_UNIQUE")" "$GOAL_CKPT_STORED")), in $CK_CHUNKS chunks; fixed 64 KiB chunking would need $((CK_UNIQUE / 65536)) ($(pf le "$CK_CHUNKS" $((CK_UNIQUE / 65536))))"
	echo "  restic repository $CK_RESTIC bytes = $(ratio "$CK_RESTIC" "$CK_UNIQUE")x unique"
	echo "  time for the 4 pushes: cas $(awk '$1 == "cas.ckpt_push" {s += $2} END {printf "%.2f", s}' "$RESULTS") s, restic backup $(awk '$1 == "restic.ckpt_backup" {s += $2} END {printf "%.2f", s}' "$RESULTS") s"
fi

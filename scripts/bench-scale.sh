#!/usr/bin/env bash
# bench-scale.sh — the benchmark behind `make bench-scale` (issue 13: cost
# follows the work, not the repository).
#
# Part A, local, file counts: for each file count N, a tree of N files of
# 0.5–2 KiB in N/1000 directories (scripts/gendata); cas push into a fresh
# store beside restic backup into a fresh repository (BENCH_RUNS runs each,
# alternating), then re-pushes of the unchanged tree. On the largest tree,
# every command that walks it once: push, re-push, restore, verify, diff,
# status, ls -r, gc, each with its wall time and peak RSS.
#
# Part B, remote, request counts: versitygw on 127.0.0.1 over a directory in
# the work directory; scripts/genhistory writes H small pushes (a ref each)
# into one bucket through the library; then a fresh store that knows only
# the bucket restores one 16 KiB file of one push, and the server's logs
# say how many requests that took and how many bytes of index objects it
# sent: index segments (keys under index/) and the lookup index (keys
# under lookup/), each on its own. H grows in steps on the same bucket.
#
# Part C, remote, a large lookup index: scripts/genhistory -filler grows
# the same bucket's lookup index by E synthetic entries (written through
# the lookup package, then every shard compacted); then three fresh
# stores that know only the bucket (as three machines): A pushes a big
# file of new data (gendata's big.bin) with a ref, B pushes the same file,
# C restores it by the ref and checks its b3sum. The server's logs say
# what A read of the lookup index, against the size of all of it, and
# what B uploaded under packs/, against the file's size.
#
# Environment:
#   BENCH_DIR            parent of the work directory (default /tmp)
#   BENCH_SCALE_FILES    file counts of part A (default "10000 50000 100000 1000000";
#                        the re-push goal compares the largest with 50000)
#   BENCH_SCALE_PUSHES   history lengths of part B (default "10 100 1000"; add 10000
#                        for the goal's size, which takes several minutes more)
#   BENCH_SCALE_ENTRIES  synthetic lookup entries of part C (default 10000000; 0 skips part C)
#   BENCH_SCALE_BIG_MIB  size of part C's file in MiB (default 1024)
#   BENCH_RUNS           timed runs per tool and case; median and spread reported (default 3)
#   BENCH_SCALE_LOCAL=0  skip part A
#   BENCH_SCALE_S3=0     skip parts B and C
#   BENCH_SCALE_RESTIC=0 skip restic in part A
#   BENCH_KEEP=1         keep the work directory
#
# Exit status: 0 when every command ran and every restored byte matched,
# even if a goal is missed (this is a report); non-zero if a command failed
# or bytes differ.
# shellcheck disable=SC2059 # the table formats are ours, not data
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

FILES_LIST=${BENCH_SCALE_FILES:-10000 50000 100000 1000000}
PUSHES_LIST=${BENCH_SCALE_PUSHES:-10 100 1000}
ENTRIES=${BENCH_SCALE_ENTRIES:-10000000}
BIG_MIB=${BENCH_SCALE_BIG_MIB:-1024}
RUNS=${BENCH_RUNS:-3}
LOCAL=${BENCH_SCALE_LOCAL:-1}
S3=${BENCH_SCALE_S3:-1}
RESTIC=${BENCH_SCALE_RESTIC:-1}

die() { echo "bench-scale: FAIL: $*" >&2; exit 1; }
say() { echo "bench-scale: $*" >&2; }

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a number > 0, got '$RUNS'"
[[ $ENTRIES =~ ^(0|[1-9][0-9]*)$ ]] || die "BENCH_SCALE_ENTRIES must be a number >= 0, got '$ENTRIES'"
[[ $BIG_MIB =~ ^[1-9][0-9]*$ ]] || die "BENCH_SCALE_BIG_MIB must be a number > 0, got '$BIG_MIB'"
# sorted, unique, each a number > 0
numbers() {
	local v
	for v in $2; do [[ $v =~ ^[1-9][0-9]*$ ]] || die "$1 must hold numbers > 0, got '$v'"; done
	tr ' ' '\n' <<<"$2" | grep . | sort -n -u | tr '\n' ' '
}
FILES_LIST=$(numbers BENCH_SCALE_FILES "$FILES_LIST")
PUSHES_LIST=$(numbers BENCH_SCALE_PUSHES "$PUSHES_LIST")
for h in $PUSHES_LIST; do ((h <= 99999)) || die "BENCH_SCALE_PUSHES: at most 99999 pushes"; done
read -ra FILES_ARR <<<"$FILES_LIST"
read -ra PUSHES_ARR <<<"$PUSHES_LIST"
NMAX=${FILES_ARR[-1]}
HMAX=${PUSHES_ARR[-1]}

# Goals of issue 13.
GOAL_RSS_MIB=128     # peak RSS of every command on the 1,000,000-file tree
GOAL_PUSH_X=3        # restic backup / cas push, at least
GOAL_SPREAD=20       # (max - min) / median of cas push, percent, below
GOAL_REPUSH_X=20     # re-push of the largest tree / re-push of 50,000 files, at most
GOAL_REPUSH_BASE=50000
GOAL_REQS=10         # requests of a fresh restore of one file, at most
GOAL_INDEX_KIB=1024  # bytes of index objects (index/ and lookup/) it downloads, at most (KiB)
GOAL_LOOKUP_PCT=1    # part C: bytes of lookup/ a push of new data reads, % of all lookup/ bytes, at most
GOAL_UPLOAD_PCT=1    # part C: bytes a second push of the same data PUTs under packs/, % of the data, at most

# ---------------------------------------------------------------- tools
command -v go >/dev/null || die "go is not installed"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install time)"
command -v b3sum >/dev/null || die "b3sum is missing (make deps)"
if [[ $LOCAL == 1 && $RESTIC == 1 ]]; then
	command -v restic >/dev/null || die "restic is missing (apt-get install restic), or set BENCH_SCALE_RESTIC=0"
fi
if [[ $S3 == 1 ]]; then
	VERSITYGW=$(command -v versitygw || echo "$(go env GOPATH)/bin/versitygw")
	[[ -x $VERSITYGW ]] || die "versitygw not found on PATH or in \$(go env GOPATH)/bin: run make deps"
	command -v aws >/dev/null || die "the aws CLI is missing (it creates the bucket), or set BENCH_SCALE_S3=0"
	AWS=$(pyenv which aws 2>/dev/null || command -v aws)
fi

load1() { cut -d' ' -f1 /proc/loadavg; }
LOAD_START=$(load1)
if awk -v l="$LOAD_START" 'BEGIN {exit !(l > 0.5)}'; then
	say "warning: load average is $LOAD_START before the run; other work on this machine will skew the figures"
fi

# ---------------------------------------------------------------- work dir
mkdir -p "${BENCH_DIR:-/tmp}"
W=$(mktemp -d "${BENCH_DIR:-/tmp}/cas-bench-scale.XXXXXX")
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
mkdir -p "$W/bin" "$W/st" "$W/out" "$W/log"
export RESTIC_PASSWORD=cas-bench RESTIC_CACHE_DIR="$W/restic-cache"
RESULTS=$W/results # lines: key wall_s peak_rss_kib cpu_s

say "building cas, gendata and genhistory from $ROOT"
(cd "$ROOT" && go build -o "$W/bin/cas" . && go build -o "$W/bin/gendata" ./scripts/gendata &&
	go build -o "$W/bin/genhistory" ./scripts/genhistory) || die "build failed"
CAS=$W/bin/cas

# ---------------------------------------------------------------- helpers

# timed KEY OUT CMD... runs CMD once with stdout to OUT and appends
# "KEY wall_s peak_rss_kib cpu_s" to $RESULTS. Any failure ends the run.
timed() {
	local key=$1 out=$2
	shift 2
	local t0 t1
	t0=$EPOCHREALTIME
	if ! /usr/bin/time -f '%M %U %S' -o "$W/log/time" "$@" >"$out" 2>"$W/log/stderr"; then
		tail -n 20 "$W/log/stderr" >&2
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
# spread KEY: (max - min) / median of the wall times of KEY, in percent.
spread() {
	awk -v k="$1" -v m="$(median "$1")" '$1 == k {if (n++ == 0 || $2 < lo) lo = $2; if ($2 > hi) hi = $2}
		END {if (m > 0) printf "%.0f", 100 * (hi - lo) / m; else print "-"}' "$RESULTS"
}
maxrss() { awk -v k="$1" '$1 == k && $3 > m {m = $3} END {print m + 0}' "$RESULTS"; }
has() { grep -q "^$1 " "$RESULTS" 2>/dev/null; }

json_str() { grep -o "\"$1\": *\"[^\"]*\"" "$2" | head -n 1 | sed 's/.*: *"\(.*\)"/\1/'; }
json_num() { grep -o "\"$1\": *[0-9]*" "$2" | head -n 1 | sed 's/.*: *//'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; } # of KiB
kib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1024}'; } # of bytes
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}'; }
pf() { if "$@"; then echo PASS; else echo FAIL; fi; }
le() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a <= b)}'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a < b)}'; }

# warm reads every byte under its arguments so that every tool starts with a warm page cache.
warm() { find "$@" -type f -print0 | xargs -0 -P2 -n 2000 cat >/dev/null; }
settle() { sync; } # write back dirty pages of the previous run outside the timing
# treesum DIR: one digest over every file's path and b3sum below DIR, independent of
# cas (gendata's paths hold no blanks, so the list sorts by its second field).
treesum() { (cd "$1" && find . -type f -print0 | xargs -0 -P2 -n 5000 b3sum) | sort -k 2 | b3sum --no-names; }

new_store() { # new_store DIR: a fresh initialised cas store (DIR/.cas), outside the timing
	rm -rf "$1"
	mkdir -p "$1"
	CAS_DIR=$1/.cas "$CAS" init >/dev/null 2>"$W/log/init" || { cat "$W/log/init" >&2; die "cas init failed"; }
}
new_restic() { # new_restic DIR
	rm -rf "$1"
	restic -r "$1" init --quiet >/dev/null 2>"$W/log/init" || { cat "$W/log/init" >&2; die "restic init failed"; }
}

# ---------------------------------------------------------------- part A: file counts
declare -A DIGEST # N -> the tree's digest, from the first push
# push_case N: the tree of N files; cas push and restic backup, then re-pushes.
# Leaves the last store in $W/st/a$N and the tree in $W/data/$N/tree.
push_case() {
	local n=$1 dirs=$(($1 / 1000)) i s r d
	((dirs >= 1)) || dirs=1
	say "part A: generating $n files in $dirs directories"
	"$W/bin/gendata" -out "$W/data/$n" -size-mb 0 -files "$n" -dirs "$dirs" -min 512 -max 2048 || die "gendata failed"
	local tree=$W/data/$n/tree
	echo "$n $(find "$tree" -type f -printf '%s\n' | awk '{s += $1} END {print s}')" >>"$W/log/treebytes"
	warm "$tree"
	say "part A: $n files: cas push into a fresh store, restic backup into a fresh repository ($RUNS runs each)"
	for ((i = 1; i <= RUNS; i++)); do
		s=$W/st/a$n
		new_store "$s"
		settle
		CAS_DIR=$s/.cas timed "cas.push.$n" "$W/log/push.json" "$CAS" push "$tree" --name x --local --json --quiet
		d=$(json_str digest "$W/log/push.json")
		[[ $d == blake3:* ]] || die "cas push printed no digest"
		[[ $(json_num files "$W/log/push.json") == "$n" ]] || die "cas push counted $(json_num files "$W/log/push.json") files, want $n"
		if ((i == 1)); then DIGEST[$n]=$d; fi
		[[ $d == "${DIGEST[$n]}" ]] || die "tree digest changed between runs: $d vs ${DIGEST[$n]}"
		if ((i < RUNS)); then rm -rf "$s"; fi # the last store serves the re-push
		if [[ $RESTIC == 1 ]]; then
			r=$W/st/restic$n
			new_restic "$r"
			settle
			timed "restic.backup.$n" /dev/null restic -r "$r" backup --quiet "$tree"
			rm -rf "$r"
		fi
	done
	say "part A: $n files: re-push of the unchanged tree into the same store ($RUNS runs)"
	for ((i = 1; i <= RUNS; i++)); do
		settle
		CAS_DIR=$s/.cas timed "cas.repush.$n" "$W/log/repush.json" "$CAS" push "$tree" --name x --local --json --quiet
		d=$(json_str digest "$W/log/repush.json")
		[[ $d == "${DIGEST[$n]}" ]] || die "re-push digest $d differs from the first push ${DIGEST[$n]}"
		local nb
		nb=$(json_num new_bytes "$W/log/repush.json")
		[[ -z $nb || $nb == 0 ]] || die "re-push of an unchanged tree reports new_bytes=$nb"
	done
}

# every_command N: the other commands on the store and tree of push_case N,
# once each (push and re-push were timed there).
every_command() {
	local n=$1 s=$W/st/a$1 tree=$W/data/$1/tree o=$W/out/restore
	say "part A: $n files: restore, verify, diff, status, ls -r, gc (one run each)"
	rm -rf "$o"
	settle
	CAS_DIR=$s/.cas timed "cmd.restore" /dev/null "$CAS" restore x "$o" --quiet
	say "  checking the restored tree against the source (b3sum of every file)"
	[[ $(treesum "$o") == "$(treesum "$tree")" ]] || die "the restored tree differs from the pushed one"
	rm -rf "$o"
	settle
	CAS_DIR=$s/.cas timed "cmd.verify" "$W/log/verify" "$CAS" verify x --quiet
	# --exit-code: a difference fails the run.
	CAS_DIR=$s/.cas timed "cmd.diff" "$W/log/diff" "$CAS" diff x "$tree" --exit-code
	CAS_DIR=$s/.cas timed "cmd.status" "$W/log/status" "$CAS" status "$tree"
	CAS_DIR=$s/.cas timed "cmd.ls" "$W/log/ls" "$CAS" ls x -r
	local lines
	lines=$(wc -l <"$W/log/ls")
	((lines >= n)) || die "cas ls -r printed $lines lines for $n files"
	rm -f "$W/log/ls"
	CAS_DIR=$s/.cas timed "cmd.gc" "$W/log/gc" "$CAS" gc --json
}

if [[ $LOCAL == 1 ]]; then
	for n in "${FILES_ARR[@]}"; do
		push_case "$n"
		if ((n == NMAX)); then every_command "$n"; fi
		rm -rf "$W/st/a$n" "$W/data/$n"
	done
fi

# ---------------------------------------------------------------- part B: request counts
if [[ $S3 == 1 ]]; then
	GW_DIR=$W/s3
	mkdir -p "$GW_DIR" "$W/aws"
	GW_KEY=cas-bench
	GW_SECRET=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	# A clean AWS environment: these keys and region, no profile or config of the user,
	# and no versitygw settings of the user's (VGW_*), which could change its port or logs.
	unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_DEFAULT_PROFILE
	while read -r v; do unset "$v"; done < <(compgen -e | grep '^VGW_' || true)
	: >"$W/aws/config"
	export AWS_ACCESS_KEY_ID=$GW_KEY AWS_SECRET_ACCESS_KEY=$GW_SECRET AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
		AWS_CONFIG_FILE=$W/aws/config AWS_SHARED_CREDENTIALS_FILE=$W/aws/config
	BUCKET=hist

	# start_gw MODE: versitygw on a free 127.0.0.1 port over $GW_DIR. MODE
	# quiet: no logs (while genhistory writes); logged: every request in the
	# access log ($W/log/access, one line a request with its request id,
	# operation and key) and, with --log-level debug, every request's and
	# response's headers ($W/log/gwdebug), where the bytes of each response
	# are (the access log records none for GETs, whose bodies stream).
	start_gw() {
		local mode=$1 try port flags=(--quiet)
		if [[ $mode == logged ]]; then
			: >"$W/log/access"
			flags=(--log-level debug --access-log "$W/log/access")
		fi
		for ((try = 1; try <= 5; try++)); do
			port=$((20000 + RANDOM % 40000))
			if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi # taken
			env ROOT_ACCESS_KEY="$GW_KEY" ROOT_SECRET_KEY="$GW_SECRET" \
				"$VERSITYGW" "${flags[@]}" --region us-east-1 --port "127.0.0.1:$port" posix "$GW_DIR" >"$W/log/gwdebug" 2>&1 &
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
			grep -q "address already in use" "$W/log/gwdebug" || break
		done
		cat "$W/log/gwdebug" >&2
		die "versitygw did not start"
	}
	# access_lines prints how many requests the access log holds, once it
	# has stopped growing (it is written behind the responses).
	access_lines() {
		local a b=-1 t
		for ((t = 0; t < 50; t++)); do
			a=$(grep -c ' s3_' "$W/log/access" || true)
			[[ $a == "$b" ]] && break
			b=$a
			sleep 0.1
		done
		echo "$a"
	}
	# requests FROM: the requests of the access log after its first FROM, as
	# "total get list head put delete other index_gets index_bytes
	# lookup_gets lookup_bytes all_bytes unknown pack_puts pack_bytes
	# put_bytes": the bytes of each response taken from its Content-Length
	# in the debug log (by request id); unknown counts requests whose
	# response the debug log does not show in one piece. index_* are GETs
	# under index/, lookup_* under lookup/. put_bytes are the bytes of every
	# PutObject, from the object size the access log records (for refused
	# conditional PUTs too: their bytes were sent), plus the size in the
	# bucket of each object a multipart upload completed (the log records
	# none for upload parts); pack_* count the same under packs/ (pack_puts:
	# the requests that write there, a multipart upload's three kinds
	# included).
	requests() {
		sed 's/\x1b\[[0-9;]*m//g' "$W/log/gwdebug" | awk '
			/\[ RESPONSE HEADERS \]/ {inresp = 1; id = ""; cl = ""; broken = 0; next}
			inresp && /\[ (REQUEST|RESPONSE) (HEADERS|BODY) \]/ {broken = 1}
			inresp && /^\[URL\]/ {broken = 1}
			inresp && /^└/ {inresp = 0; if (id != "" && !broken) print id, (cl == "" ? 0 : cl); next}
			inresp && /^│ / {
				line = substr($0, 5); k = line; sub(/ *:.*/, "", k); v = line; sub(/^[^:]*: /, "", v); sub(/ *│$/, "", v)
				if (tolower(k) == "x-amz-request-id") {if (id != "" && id != v) broken = 1; id = v}
				if (k == "Content-Length") {if (cl != "") broken = 1; cl = v}
			}' >"$W/log/respbytes"
		grep ' s3_' "$W/log/access" | tail -n "+$(($1 + 1))" >"$W/log/window"
		local mpu=0 mpupacks=0 k sz
		while read -r k; do
			sz=$(stat -c %s "$GW_DIR/$BUCKET/$k" 2>/dev/null || echo 0)
			mpu=$((mpu + sz))
			if [[ $k == cas/packs/* ]]; then mpupacks=$((mpupacks + sz)); fi
		done < <(awk '$8 == "s3_CompleteMultipartUpload" {print $9}' "$W/log/window")
		awk -v prefix="cas/" -v pb="$mpupacks" -v put="$mpu" '
			FILENAME == ARGV[1] {bytes[$1] = $2; next}
			{
				id = $7; op = $8; key = $9; t++
				if (op == "s3_GetObject") g++
				else if (op ~ /^s3_ListObjects/) l++
				else if (op == "s3_HeadObject") h++
				else if (op ~ /^s3_(PutObject|UploadPart|CreateMultipartUpload|CompleteMultipartUpload)$/) {
					p++
					if (index(key, prefix "packs/") == 1) pp++
					if (op == "s3_PutObject") {put += $14; if (index(key, prefix "packs/") == 1) pb += $14}
				} else if (op ~ /^s3_DeleteObjects?$/) d++
				else o++
				if (!(id in bytes)) {u++; next}
				all += bytes[id]
				if (op == "s3_GetObject" && index(key, prefix "index/") == 1) {ig++; ib += bytes[id]}
				if (op == "s3_GetObject" && index(key, prefix "lookup/") == 1) {lg++; lb += bytes[id]}
			}
			END {printf "%d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d\n", t, g, l, h, p, d, o, ig, ib, lg, lb, all, u, pp, pb, put}' "$W/log/respbytes" "$W/log/window"
	}
	# bucket_bytes PREFIX: "objects bytes" of the keys under PREFIX in the bucket, from its directory.
	bucket_bytes() {
		if [[ -d $GW_DIR/$BUCKET/cas/$1 ]]; then
			find "$GW_DIR/$BUCKET/cas/$1" -type f -printf '%s\n' | awk '{n++; s += $1} END {printf "%d %d\n", n, s}'
		else
			echo "0 0"
		fi
	}

	say "part B: versitygw over $GW_DIR; bucket $BUCKET; pushes written by scripts/genhistory"
	start_gw quiet
	"$AWS" --endpoint-url "$ENDPOINT" s3 mb "s3://$BUCKET" >/dev/null 2>"$W/log/mb" || { cat "$W/log/mb" >&2; die "aws s3 mb failed"; }
	GEN=$W/hist/gen
	new_store "$GEN"
	CAS_DIR=$GEN/.cas "$CAS" remote add origin "s3://$BUCKET/cas" --endpoint "$ENDPOINT" >/dev/null 2>"$W/log/remote" ||
		{ cat "$W/log/remote" >&2; die "cas remote add failed"; }
	done_pushes=0
	for h in "${PUSHES_ARR[@]}"; do
		if ((h > done_pushes)); then
			[[ -n $GW_PID ]] || start_gw quiet
			# The remote's endpoint changes with the port: record it anew.
			CAS_DIR=$GEN/.cas "$CAS" remote remove origin >/dev/null 2>&1 || true
			CAS_DIR=$GEN/.cas "$CAS" remote add origin "s3://$BUCKET/cas" --endpoint "$ENDPOINT" >/dev/null 2>"$W/log/remote" ||
				{ cat "$W/log/remote" >&2; die "cas remote add failed"; }
			say "part B: genhistory: pushes $done_pushes to $((h - 1))"
			timed "gen.$h" /dev/null "$W/bin/genhistory" -store "$GEN/.cas" -start "$done_pushes" -pushes "$((h - done_pushes))" \
				-list "$W/log/history.tsv" -work "$W/hist/work"
			done_pushes=$h
		fi
		stop_gw
		start_gw logged
		pick=$((h / 2))
		read -r ref _ path sample < <(awk -F'\t' -v r="$(printf 'push-%05d' "$pick")" '$1 == r' "$W/log/history.tsv")
		[[ -n ${ref:-} ]] || die "genhistory listed no $(printf 'push-%05d' "$pick")"
		f=$W/hist/fresh$h
		new_store "$f"
		CAS_DIR=$f/.cas "$CAS" remote add origin "s3://$BUCKET/cas" --endpoint "$ENDPOINT" --connections 1 >/dev/null 2>"$W/log/remote" ||
			{ cat "$W/log/remote" >&2; die "cas remote add failed"; }
		from=$(access_lines)
		o=$W/out/one$h
		rm -f "$o"
		say "part B: $h pushes: a fresh store restores $ref:$path"
		CAS_DIR=$f/.cas timed "one.$h" /dev/null "$CAS" restore "$ref:$path" "$o" --quiet
		access_lines >/dev/null # let the log catch up
		[[ "blake3:$(b3sum --no-names "$o")" == "$sample" ]] || die "the restored $ref:$path differs from what genhistory pushed"
		echo "$h $(requests "$from")" >>"$W/log/requests"
		awk -v h="$h" '$1 == h {printf "  requests %d (GET %d, LIST %d, HEAD %d, other %d), index/ %d GETs, %.1f KiB; lookup/ %d GETs, %.1f KiB\n",
			$2, $3, $4, $5, $6 + $7 + $8, $9, $10 / 1024, $11, $12 / 1024}' "$W/log/requests" >&2
		stop_gw
		rm -rf "$f" "$o"
	done
	BUCKET_OBJECTS=$(find "$GW_DIR/$BUCKET" -type f | wc -l)
	read -r B_INDEX_N B_INDEX_BYTES < <(bucket_bytes index)
	read -r B_LOOKUP_N B_LOOKUP_BYTES < <(bucket_bytes lookup)

	# ------------------------------------------------------------ part C: a large lookup index
	# machine NAME KEY OUT CMD...: in the fresh store $W/c/NAME, which knows
	# only the bucket, run the cas command CMD (timed as KEY, stdout to OUT)
	# and record its requests as "NAME fields of requests" in $W/log/partc.
	machine() {
		local name=$1 key=$2 out=$3 s=$W/c/$1
		shift 3
		new_store "$s"
		CAS_DIR=$s/.cas "$CAS" remote add origin "s3://$BUCKET/cas" --endpoint "$ENDPOINT" --connections 1 >/dev/null 2>"$W/log/remote" ||
			{ cat "$W/log/remote" >&2; die "cas remote add failed"; }
		local from
		from=$(access_lines)
		CAS_DIR=$s/.cas timed "$key" "$out" "$CAS" "$@"
		access_lines >/dev/null # let the log catch up
		echo "$name $(requests "$from")" >>"$W/log/partc"
		cp "$W/log/window" "$W/log/access.$name" # its requests, for a look with BENCH_KEEP=1
		awk -v m="$name" '$1 == m {printf "  requests %d (GET %d, PUT %d, LIST %d, HEAD %d, DELETE %d, other %d); lookup/ %d GETs, %.1f KiB; index/ %d GETs, %.1f KiB; packs/ %d PUTs, %.1f MiB; PUT %.1f MiB in all\n",
			$2, $3, $6, $4, $5, $7, $8, $11, $12 / 1024, $9, $10 / 1024, $15, $16 / 1048576, $17 / 1048576}' "$W/log/partc" >&2
	}
	if ((ENTRIES > 0)); then
		say "part C: gendata: a file of $BIG_MIB MiB"
		"$W/bin/gendata" -out "$W/data/big" -size-mb "$BIG_MIB" -files 0 >/dev/null || die "gendata failed"
		BIG=$W/data/big/big.bin
		BIG_SUM=$(b3sum --no-names "$BIG")
		start_gw quiet
		CAS_DIR=$GEN/.cas "$CAS" remote remove origin >/dev/null 2>&1 || true
		CAS_DIR=$GEN/.cas "$CAS" remote add origin "s3://$BUCKET/cas" --endpoint "$ENDPOINT" >/dev/null 2>"$W/log/remote" ||
			{ cat "$W/log/remote" >&2; die "cas remote add failed"; }
		say "part C: genhistory: $ENTRIES synthetic lookup entries, then every shard compacted"
		timed "fill" /dev/null "$W/bin/genhistory" -store "$GEN/.cas" -filler "$ENTRIES"
		stop_gw
		read -r C_LOOKUP_N C_LOOKUP_BYTES < <(bucket_bytes lookup)
		read -r C_INDEX_N C_INDEX_BYTES < <(bucket_bytes index)
		say "part C: the bucket's lookup index: $C_LOOKUP_N objects, $(kib "$C_LOOKUP_BYTES") KiB"
		start_gw logged
		warm "$BIG"
		settle
		say "part C: machine A pushes the file (new data) with the ref big"
		machine A c.push.A "$W/log/pushA.json" push "$BIG" --name big --json --quiet
		[[ $(json_str digest "$W/log/pushA.json") == "blake3:$BIG_SUM" ]] || die "A's push printed the digest $(json_str digest "$W/log/pushA.json"), want blake3:$BIG_SUM"
		rm -rf "$W/c/A"
		settle
		say "part C: machine B pushes the same file"
		machine B c.push.B "$W/log/pushB.json" push "$BIG" --name big --json --quiet
		[[ $(json_str digest "$W/log/pushB.json") == "blake3:$BIG_SUM" ]] || die "B's push printed the digest $(json_str digest "$W/log/pushB.json"), want blake3:$BIG_SUM"
		rm -rf "$W/c/B"
		settle
		say "part C: machine C restores big"
		rm -f "$W/out/big.bin"
		machine C c.restore.C /dev/null restore big "$W/out/big.bin" --quiet
		[[ $(b3sum --no-names "$W/out/big.bin") == "$BIG_SUM" ]] || die "the file C restored differs from the one A pushed"
		say "  b3sum of the restored file matches"
		stop_gw
		rm -rf "$W/c" "$W/out/big.bin" "$W/data/big"
	fi
fi

# ---------------------------------------------------------------- report
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
rev=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo "no commit")
tools="$(go version | cut -d' ' -f3-), cas @ $rev"
[[ $LOCAL == 1 && $RESTIC == 1 ]] && tools+=", $(restic version | cut -d' ' -f1-2)"
[[ $S3 == 1 ]] && tools+=", versitygw $(go version -m "$VERSITYGW" 2>/dev/null | awk '$1 == "mod" {print $3}')"
cat <<EOF

== cas scale benchmark ($(date -u +%Y-%m-%dT%H:%MZ))
machine: $(nproc) cores, $cpu, $mem RAM, Linux $(uname -r)
tools:   $tools
runs:    $RUNS per tool and case (part A), median wall time, spread = (max - min) / median, page cache warm, peak RSS from /usr/bin/time
load:    1-minute load average $LOAD_START before the run, $(load1) after (the run itself adds about 1-2)
EOF

if [[ $LOCAL == 1 ]]; then
	echo
	echo "part A: trees of N files of 0.5-2 KiB in N/1000 directories; cas push --local into a fresh store, restic backup into a fresh repository"
	fmt='%8s %6s  %14s %7s  %14s %7s %10s %8s %8s  %14s %7s\n'
	printf "$fmt" N MiB "cas push s" "CPU s" "restic s" "CPU s" restic/cas "cas RSS" "rst RSS" "re-push s" "RSS"
	for n in "${FILES_ARR[@]}"; do
		c=$(median "cas.push.$n") rp=$(median "cas.repush.$n")
		rs=- rc=- rr=- rmem=-
		if has "restic.backup.$n"; then
			rs="$(median "restic.backup.$n") ($(spread "restic.backup.$n")%)"
			rc=$(median "restic.backup.$n" 4)
			rr=$(ratio "$(median "restic.backup.$n")" "$c")
			rmem=$(mib "$(maxrss "restic.backup.$n")")
		fi
		printf "$fmt" "$n" "$(awk -v n="$n" '$1 == n {printf "%.0f", $2 / 1048576}' "$W/log/treebytes")" \
			"$c ($(spread "cas.push.$n")%)" "$(median "cas.push.$n" 4)" "$rs" "$rc" "$rr" "$(mib "$(maxrss "cas.push.$n")")" "$rmem" \
			"$rp ($(spread "cas.repush.$n")%)" "$(mib "$(maxrss "cas.repush.$n")")"
	done
	echo "  (wall s: median (spread); CPU s: median user+system time, less sensitive to other load on the machine; RSS: MiB, the largest of the runs)"
	echo
	echo "every command on the $NMAX-file tree (push and re-push: median of $RUNS runs, the others one run; RSS: the largest)"
	fmt='%-28s %9s %9s %9s %9s\n'
	printf "$fmt" command "wall s" "CPU s" "RSS MiB" "<=${GOAL_RSS_MIB}"
	worst=0 worstcmd=
	for k in "cas.push.$NMAX push" "cas.repush.$NMAX push (re-push)" "cmd.restore restore x DEST" "cmd.verify verify x" \
		"cmd.diff diff x DIR" "cmd.status status DIR" "cmd.ls ls x -r" "cmd.gc gc"; do
		key=${k%% *} label=${k#* }
		has "$key" || continue
		m=$(maxrss "$key")
		if ((m > worst)); then worst=$m worstcmd=$label; fi
		printf "$fmt" "$label" "$(median "$key")" "$(median "$key" 4)" "$(mib "$m")" "$(pf le "$m" $((GOAL_RSS_MIB * 1024)))"
	done
	echo
	at="at N=$NMAX"
	((NMAX == 1000000)) || at="at N=$NMAX (the goals are for N=1000000)"
	echo "goals of issue 13, part A, $at:"
	echo "  peak RSS <= $GOAL_RSS_MIB MiB for every command: $(pf le "$worst" $((GOAL_RSS_MIB * 1024))) (largest $(mib "$worst") MiB, $worstcmd)"
	c=$(median "cas.push.$NMAX")
	if has "restic.backup.$NMAX"; then
		x=$(ratio "$(median "restic.backup.$NMAX")" "$c")
		echo "  push >= ${GOAL_PUSH_X}x faster than restic backup: $(pf le "$GOAL_PUSH_X" "$x") (restic $(median "restic.backup.$NMAX") s / cas $c s = ${x}x;" \
			"CPU time $(ratio "$(median "restic.backup.$NMAX" 4)" "$(median "cas.push.$NMAX" 4)")x)"
	else
		echo "  push >= ${GOAL_PUSH_X}x faster than restic backup: not measured (BENCH_SCALE_RESTIC=0)"
	fi
	sp=$(spread "cas.push.$NMAX")
	if ((RUNS >= 2)); then
		echo "  spread of cas push < ${GOAL_SPREAD}%: $(pf lt "$sp" "$GOAL_SPREAD") (${sp}% over $RUNS runs)"
	else
		echo "  spread of cas push < ${GOAL_SPREAD}%: not measured (one run)"
	fi
	if has "cas.repush.$GOAL_REPUSH_BASE" && ((NMAX > GOAL_REPUSH_BASE)); then
		b=$(median "cas.repush.$GOAL_REPUSH_BASE") t=$(median "cas.repush.$NMAX")
		lim=$(awk -v b="$b" -v x=$GOAL_REPUSH_X 'BEGIN {printf "%.3f", b * x}')
		echo "  re-push <= ${GOAL_REPUSH_X}x the $GOAL_REPUSH_BASE-file re-push: $(pf le "$t" "$lim") ($t s vs $b s x $GOAL_REPUSH_X = $lim s; $(ratio "$t" "$b")x)"
	else
		echo "  re-push <= ${GOAL_REPUSH_X}x the $GOAL_REPUSH_BASE-file re-push: not measured (BENCH_SCALE_FILES needs $GOAL_REPUSH_BASE and a larger count)"
	fi
fi

if [[ $S3 == 1 ]]; then
	echo
	echo "part B: a fresh store (cas init; cas remote add --connections 1) restores one 16 KiB file of one push from a bucket holding H pushes;"
	echo "        requests from versitygw's access log, bytes from the Content-Length of each response in its debug log"
	echo "        index: GETs under index/ (segments), lookup: GETs under lookup/ (the lookup index)"
	fmt='%7s %9s %5s %5s %5s %6s %7s %10s %7s %10s %9s %10s %6s %9s %6s\n'
	printf "$fmt" H requests GET LIST HEAD other "index" "index KiB" lookup "lookup KiB" "all KiB" "restore s" "CPU s" "gen s" "CPU s"
	while read -r h t g l hd p d o ig ib lg lb all u _; do
		printf "$fmt" "$h" "$t" "$g" "$l" "$hd" "$((p + d + o))" "$ig" "$(kib "$ib")" "$lg" "$(kib "$lb")" "$(kib "$all")" \
			"$(median "one.$h")" "$(median "one.$h" 4)" \
			"$(if has "gen.$h"; then median "gen.$h"; else echo -; fi)" "$(if has "gen.$h"; then median "gen.$h" 4; else echo -; fi)"
		if ((u > 0)); then echo "        ($u of these requests had no response headers in the debug log: their bytes are not counted)"; fi
	done <"$W/log/requests"
	echo "  (gen s: scripts/genhistory writing the pushes added since the row above; the bucket ends with $BUCKET_OBJECTS objects:"
	echo "   index/ $B_INDEX_N objects, $(kib "$B_INDEX_BYTES") KiB; lookup/ $B_LOOKUP_N objects, $(kib "$B_LOOKUP_BYTES") KiB)"
	read -r _ t _ _ _ _ _ _ _ ib _ lb _ < <(awk -v h="$HMAX" '$1 == h' "$W/log/requests")
	read -r _ t0 _ < <(head -n 1 "$W/log/requests")
	echo
	at="at H=$HMAX"
	((HMAX >= 10000)) || at="at H=$HMAX (the goal is for H=10000: BENCH_SCALE_PUSHES=\"10 100 1000 10000\")"
	echo "goal of issue 13, part B, $at:"
	ok=FAIL
	if ((t <= GOAL_REQS && ib + lb <= GOAL_INDEX_KIB * 1024)); then ok=PASS; fi
	echo "  <= $GOAL_REQS requests and <= 1 MiB of index at the largest H: $ok" \
		"($t requests, $(kib "$((ib + lb))") KiB of index: $(kib "$ib") KiB of index/, $(kib "$lb") KiB of lookup/; $t0 requests at H=${PUSHES_ARR[0]})"

	if [[ -s $W/log/partc ]]; then
		big=$((BIG_MIB * 1048576))
		echo
		echo "part C: the bucket of part B grown by $ENTRIES synthetic lookup entries (scripts/genhistory -filler: $(median fill) s, CPU $(median fill 4) s,"
		echo "        $(mib "$(maxrss fill)") MiB); its lookup index then holds $C_LOOKUP_N objects, $(kib "$C_LOOKUP_BYTES") KiB; index/ $C_INDEX_N objects, $(kib "$C_INDEX_BYTES") KiB."
		echo "        Three fresh stores (cas init; cas remote add --connections 1): A pushes a file of $BIG_MIB MiB of new data (cas push FILE --name big),"
		echo "        B pushes the same file, C restores it (cas restore big DEST; b3sum checked). Requests from the access log; GET bytes from the"
		echo "        debug log; PUT bytes: the object size of each PutObject in the access log, refused ones (the object was there) included."
		fmt='%-3s %-20s %9s %5s %5s %5s %5s %6s %6s %7s %11s %6s %10s %9s %9s %8s %8s %8s %9s\n'
		printf "$fmt" "" command requests GET PUT LIST HEAD DELETE other lookup "lookup KiB" index "index KiB" "packs PUT" "packs MiB" "PUT MiB" "wall s" "CPU s" "RSS MiB"
		while read -r m t g l hd p d o ig ib lg lb all u pp pb put; do
			case $m in
			A) c="push FILE --name big" k=c.push.A ;;
			B) c="push FILE --name big" k=c.push.B ;;
			*) c="restore big DEST" k=c.restore.C ;;
			esac
			printf "$fmt" "$m" "$c" "$t" "$g" "$p" "$l" "$hd" "$d" "$o" "$lg" "$(kib "$lb")" "$ig" "$(kib "$ib")" "$pp" \
				"$(awk -v b="$pb" 'BEGIN {printf "%.2f", b / 1048576}')" "$(awk -v b="$put" 'BEGIN {printf "%.2f", b / 1048576}')" \
				"$(median "$k")" "$(median "$k" 4)" "$(mib "$(maxrss "$k")")"
			if ((u > 0)); then echo "        ($u of $m's requests had no response headers in the debug log: their bytes are not counted)"; fi
		done <"$W/log/partc"
		read -r _ _ _ _ _ _ _ _ _ _ _ lbA _ _ _ pbA _ < <(awk '$1 == "A"' "$W/log/partc")
		read -r _ _ _ _ _ _ _ _ _ _ _ _ _ _ ppB pbB putB < <(awk '$1 == "B"' "$W/log/partc")
		pct() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.3f", 100 * a / b; else print "-"}'; }
		echo
		at="with $ENTRIES entries and $BIG_MIB MiB"
		((ENTRIES >= 10000000 && BIG_MIB >= 1024)) || at+=" (the goals are for 10000000 entries and 1024 MiB)"
		echo "goals of issue 13, part C, $at:"
		echo "  A's push of new data reads <= ${GOAL_LOOKUP_PCT}% of the lookup index: $(pf le "$(pct "$lbA" "$C_LOOKUP_BYTES")" "$GOAL_LOOKUP_PCT")" \
			"($(kib "$lbA") KiB of $(kib "$C_LOOKUP_BYTES") KiB = $(pct "$lbA" "$C_LOOKUP_BYTES")%)"
		echo "  B's push of the same data uploads <= ${GOAL_UPLOAD_PCT}% of it under packs/: $(pf le "$(pct "$pbB" "$big")" "$GOAL_UPLOAD_PCT")" \
			"($ppB requests, $(kib "$pbB") KiB of $(kib "$big") KiB = $(pct "$pbB" "$big")%; A wrote $(awk -v b="$pbA" 'BEGIN {printf "%.1f", b / 1048576}') MiB there;" \
			"B's PUTs of every kind: $(kib "$putB") KiB = $(pct "$putB" "$big")%)"
	fi
fi

echo
echo "every timing (wall s: median, min, max; CPU s user+system: median; peak RSS MiB: largest)"
fmt='%-22s %9s %9s %9s %9s %9s\n'
printf "$fmt" run median min max "CPU" "RSS"
awk '!seen[$1]++ {print $1}' "$RESULTS" | while read -r k; do
	printf "$fmt" "$k" "$(median "$k")" "$(awk -v k="$k" '$1 == k && (m == "" || $2 < m) {m = $2} END {print m}' "$RESULTS")" \
		"$(awk -v k="$k" '$1 == k && $2 > m {m = $2} END {print m}' "$RESULTS")" "$(median "$k" 4)" "$(mib "$(maxrss "$k")")"
done

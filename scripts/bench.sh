#!/usr/bin/env bash
# bench.sh — the benchmark behind `make bench`.
#
# Generates deterministic data (scripts/gendata), then runs cas beside b3sum and
# restic on the same data in the same run and prints median wall times, ratios
# and peak memory against the goals of issue 2. Everything stays on this machine.
#
# Environment:
#   BENCH_DIR      parent of the work directory (default /tmp)
#   BENCH_SIZE_MB  size of the big incompressible file in MiB (default 1024)
#   BENCH_FILES    number of small files (default 50000)
#   BENCH_RUNS     timed runs per tool and case; the median is reported (default 3)
#   BENCH_QUICK=1  tiny smoke run: 64 MiB, 2000 files, unless set explicitly
#   BENCH_KEEP=1   keep the work directory
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

die() { echo "bench: FAIL: $*" >&2; exit 1; }
say() { echo "bench: $*" >&2; }

# ---------------------------------------------------------------- tools
need_tools() {
	local missing=()
	command -v b3sum >/dev/null || missing+=(b3sum)
	command -v restic >/dev/null || missing+=(restic)
	[[ -x /usr/bin/time ]] || missing+=(time)
	command -v go >/dev/null || die "go is not installed"
	((${#missing[@]} == 0)) && return
	say "installing ${missing[*]} with apt-get"
	local sudo=()
	(($(id -u) == 0)) || sudo=(sudo)
	"${sudo[@]}" apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
need_tools

load1() { cut -d' ' -f1 /proc/loadavg; }
LOAD_START=$(load1)
if awk -v l="$LOAD_START" 'BEGIN {exit !(l > 0.5)}'; then
	say "warning: load average is $LOAD_START before the run; other work on this machine will skew the figures"
fi

# ---------------------------------------------------------------- work dir
mkdir -p "${BENCH_DIR:-/tmp}"
W=$(mktemp -d "${BENCH_DIR:-/tmp}/cas-bench.XXXXXX")
cleanup() {
	local rc=$?
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

	r=$W/rr/tree$i
	new_restic "$r"
	settle
	timed restic.backup_tree /dev/null restic -r "$r" backup --quiet "$TREE"
	rm -rf "$r"
done
TREE_STORE=$W/st/tree$RUNS

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

	o=$W/out/restic$i
	settle
	timed restic.restore_big /dev/null restic -r "$BIG_RESTIC" restore latest --target "$o" --quiet
	cmp "$BIG" "$o/$BIG_REL" || die "restic restore wrote different bytes"
	rm -rf "$o"
done

# ---------------------------------------------------------------- report
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a <= b)}'; }
pf() { if "$@"; then echo PASS; else echo FAIL; fi; }

cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
rev=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo "no commit")
cat <<EOF

== cas benchmark ($(date -u +%Y-%m-%dT%H:%MZ))
machine: $(nproc) cores, $cpu, $mem RAM, Linux $(uname -r)
tools:   $(go version | cut -d' ' -f3-), $(b3sum --version), $(restic version | cut -d' ' -f1-2), cas @ $rev
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

echo
echo "every timing (wall seconds: median, min, max; CPU seconds user+sys: median; peak RSS MiB: median, max)"
fmt2='%-20s %8s %8s %8s  %8s  %8s %8s\n'
printf "$fmt2" run median min max "CPU med" "RSS med" "RSS max"
for k in cas.push_big b3sum.big restic.backup_big cas.push_tree b3sum.tree2p restic.backup_tree \
	cas.repush_tree cas.restore_big restic.restore_big; do
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
echo "bytes checked: push digests equal b3sum, restored tree equals the source (diff -r), restored files equal the source (cmp)"

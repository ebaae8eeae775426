#!/usr/bin/env bash
# deep3d against the PyTorch peer on the CPU, in the same run (see bench/README.md).
#
#   bench/cpu.sh [--mode train|infer] [--batch N] [--threads N] [--rounds R]
#                [--width W --height H] [--variant released|vgg16] [--iters N] [--warmup N]
#                [--out FILE]
#   bench/cpu.sh --all [--threads N] [--rounds R] [...]   the target set: train batch 4,
#                                                         infer batch 1, infer batch 4
#
# Runs `build/deep3d bench --device cpu --json` (A) and the peer's `bench --json`-style
# output (B) with the same variant, mode, batch, resolution and threads, alternating
# A B A B ... for R rounds, then prints per round both images/s, the medians, the ratio
# deep3d/peer, deep3d's GFLOP/s against the sgemm GFLOP/s measured in the same run, and
# both peak resident set sizes.
#
# Peak RSS: both programs run under the same small wrapper that reads
# getrusage(RUSAGE_CHILDREN).ru_maxrss after the program exits: the peak resident set of
# the whole process (what GNU time's %M reports), start-up and model init included.
#
# Environment: DEEP3D_PEER (the peer script; else ../shared/peers/deep3d_torch.py beside
# the repository, else .peer/deep3d_torch.py inside it), DEEP3D_BIN (default
# build/deep3d, built with make when missing), DEEP3D_PYTHON (default /usr/bin/python3,
# Debian's python3-torch, installed with apt-get when root and missing).
#
# This file also serves bench/gpu.sh, which sources it for the functions below.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() { echo "bench: $*" >&2; exit 1; }

# The peer script: $DEEP3D_PEER, else ../shared/peers/deep3d_torch.py, else .peer/.
find_peer() {
    local p
    if [ -n "${DEEP3D_PEER:-}" ]; then
        [ -f "$DEEP3D_PEER" ] || die "DEEP3D_PEER=$DEEP3D_PEER: no such file"
        PEER=$(realpath "$DEEP3D_PEER")
        return 0
    fi
    for p in "$ROOT/../shared/peers/deep3d_torch.py" "$ROOT/.peer/deep3d_torch.py"; do
        [ -f "$p" ] && { PEER=$(realpath "$p"); return 0; }
    done
    die "the PyTorch peer deep3d_torch.py was not found: set DEEP3D_PEER, or copy it to $ROOT/.peer/deep3d_torch.py"
}

# Our binary: $DEEP3D_BIN or build/deep3d; built with plain `make` when missing.
find_bin() {
    BIN=${DEEP3D_BIN:-$ROOT/build/deep3d}
    if [ ! -x "$BIN" ]; then
        [ -n "${DEEP3D_BIN:-}" ] && die "DEEP3D_BIN=$BIN is not an executable"
        echo "bench: $BIN is missing, building it: make -C $ROOT build/deep3d" >&2
        make -C "$ROOT" -s -j"$(nproc)" build/deep3d >&2 || die "building $BIN failed"
    fi
}

# Runs one program under the rusage wrapper and appends one JSON line to FILE: the
# program's JSON (its last stdout line starting with "{") plus role, round and
# maxrss_mib. Usage: run_one ROLE ROUND FILE LOG cmd... ; its stderr goes to LOG.
RUNNER='
import json, resource, subprocess, sys
role, rnd, out, log = sys.argv[1:5]
cmd = sys.argv[5:]
with open(log, "a") as err:
    err.write("$ " + " ".join(cmd) + "\n"); err.flush()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss   # Linux: KiB
lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
if p.returncode or not lines:
    sys.stderr.write("bench: %s failed (exit %d): %s\n" % (role, p.returncode, " ".join(cmd)))
    tail = open(log).read().strip().splitlines()[-5:]
    sys.stderr.write("".join("  | " + l + "\n" for l in tail))
    sys.exit(p.returncode or 1)
r = json.loads(lines[-1])
r.update(role=role, round=int(rnd), maxrss_mib=kib / 1024.0)
with open(out, "a") as f:
    f.write(json.dumps(r) + "\n")
sys.stderr.write("  round %s %-6s %10.3f img/s  median %.4f s  peak RSS %.0f MiB\n"
                 % (rnd, role, r["img_per_s"], r["median_s"], r["maxrss_mib"]))
'
# -I -S: the wrapper imports nothing beyond the standard library, so that its own small
# RSS (a floor under the child's ru_maxrss: Linux keeps the pre-exec peak) stays ~10 MiB.
run_one() { "$PY" -I -S -c "$RUNNER" "$@"; }

# Prints the table of one configuration from its JSON lines and appends a one-line
# summary (LABEL: a short name of the configuration) to SUMMARY.
# Usage: summarize FILE TITLE LABEL SUMMARY
SUMMARIZER='
import json, statistics, sys
path, title, label, summary = sys.argv[1:5]
rows = [json.loads(l) for l in open(path)]
a = [r for r in rows if r["role"] == "deep3d"]
b = [r for r in rows if r["role"] == "peer"]
med = lambda xs: statistics.median(xs) if xs else float("nan")
rounds = sorted({r["round"] for r in rows})
print(title)
print("%-8s %14s %14s %8s" % ("round", "deep3d img/s", "peer img/s", "ratio"))
ratios = []
for k in rounds:
    x = [r["img_per_s"] for r in a if r["round"] == k]
    y = [r["img_per_s"] for r in b if r["round"] == k]
    xs = "%14.3f" % x[0] if x else "%14s" % "failed"
    ys = "%14.3f" % y[0] if y else "%14s" % "failed"
    rs = "%8.3f" % (x[0] / y[0]) if x and y else "%8s" % "-"
    if x and y: ratios.append(x[0] / y[0])
    print("%-8s %s %s %s" % (k, xs, ys, rs))
ma, mb = med([r["img_per_s"] for r in a]), med([r["img_per_s"] for r in b])
ratio = ma / mb if a and b else float("nan")
f = lambda x, spec: "-" if x != x else spec % x   # nan (a program failed) -> "-"
print("%-8s %14s %14s %8s   <- ratio of the medians (median of the per-round ratios: %s)"
      % ("median", f(ma, "%.3f"), f(mb, "%.3f"), f(ratio, "%.3f"), f(med(ratios), "%.3f")))
ga = med([r["tflop_per_s"] * 1e3 for r in a]); gb = med([r["tflop_per_s"] * 1e3 for r in b])
sg = med([r.get("sgemm_gflop_per_s", 0) for r in a])
if sg > 0:
    print("GFLOP/s: deep3d %.1f = %.0f%% of the sgemm rate measured in the same run on the network'"'"'s conv shapes"
          " (%.1f GFLOP/s, median over rounds); peer %s" % (ga, 100 * ga / sg, sg,
          f(gb, "%.1f") + f(100 * gb / sg, " = %.0f%%")))
else:
    print("TFLOP/s: deep3d %s, peer %s (training counts 3x the forward FLOPs, as the peer does)"
          % (f(ga / 1e3, "%.2f"), f(gb / 1e3, "%.2f")))
ra, rb = med([r["maxrss_mib"] for r in a]), med([r["maxrss_mib"] for r in b])
hwm = med([r["peak_rss_mib"] for r in a if r.get("peak_rss_mib") is not None])
print("peak RSS, MiB (getrusage ru_maxrss of the whole process, median over rounds): deep3d %s, peer %s"
      " (deep3d'"'"'s own VmHWM after its timed steps, before its sgemm measurement: %s)"
      % (f(ra, "%.0f"), f(rb, "%.0f"), f(hwm, "%.0f")))
print()
pct = f(100 * ga / sg, "%.0f%%") if sg > 0 else "-"
with open(summary, "a") as fh:
    fh.write("%-44s %12s %12s %7s %8s %9s %9s\n" % (label[:44], f(ma, "%.3f"), f(mb, "%.3f"), f(ratio, "%.3f"),
                                                    pct, f(ra, "%.0f"), f(rb, "%.0f")))
'

# Runs one configuration: R rounds of A (deep3d) then B (peer), then its table.
# Usage: bench_pair TAG LABEL TITLE "OUR ARGS" "PEER ARGS"   (args split on spaces)
bench_pair() {
    local tag=$1 label=$2 title=$3 ours=$4 peer=$5 r ok=1
    local jl="$WORK/$tag.jsonl" log="$WORK/$tag.log"
    : >"$jl"
    echo "$title" >&2
    for r in $(seq 1 "$ROUNDS"); do
        # shellcheck disable=SC2086
        run_one deep3d "$r" "$jl" "$log" "$BIN" bench $ours --json || ok=0
        # shellcheck disable=SC2086
        run_one peer "$r" "$jl" "$log" "$PY" "$PEER" bench $peer || ok=0
        [ $ok = 1 ] || break
    done
    if [ -s "$jl" ]; then
        "$PY" -c "$SUMMARIZER" "$jl" "$title" "$label" "$SUMMARY"
    fi
    [ -n "$OUTFILE" ] && cat "$jl" >>"$OUTFILE"
    [ $ok = 1 ]
}

# Prints the one-line-per-configuration summary collected by summarize.
print_summary() {
    echo "== summary (medians; ratio = deep3d/peer; RSS in MiB)"
    printf '%-44s %12s %12s %7s %8s %9s %9s\n' configuration "deep3d img/s" "peer img/s" ratio "%sgemm" "RSS ours" "RSS peer"
    cat "$SUMMARY"
}

cpu_usage() {
    sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

cpu_main() {
    local mode=train batch=4 threads=2 width=384 height=160 variant=released all=0
    ROUNDS=3 ITERS=5 WARMUP=2 OUTFILE=
    while [ $# -gt 0 ]; do
        case $1 in --all|-h|--help) ;; *) [ $# -ge 2 ] || die "$1 needs a value" ;; esac
        case $1 in
            --mode) mode=$2; shift ;;
            --batch) batch=$2; shift ;;
            --threads) threads=$2; shift ;;
            --rounds) ROUNDS=$2; shift ;;
            --width) width=$2; shift ;;
            --height) height=$2; shift ;;
            --variant) variant=$2; shift ;;
            --iters) ITERS=$2; shift ;;
            --warmup) WARMUP=$2; shift ;;
            --out) OUTFILE=$2; shift ;;
            --all) all=1 ;;
            -h|--help) cpu_usage; exit 0 ;;
            *) die "unknown option '$1' (see bench/cpu.sh --help)" ;;
        esac
        shift
    done
    case $mode in train|infer) ;; *) die "--mode must be train or infer, got '$mode'" ;; esac
    for v in "$batch" "$threads" "$ROUNDS" "$width" "$height" "$ITERS" "$WARMUP"; do
        [[ $v =~ ^[0-9]+$ ]] || die "expected a whole number, got '$v'"
    done

    PY=${DEEP3D_PYTHON:-/usr/bin/python3}
    [ -x "$PY" ] || command -v "$PY" >/dev/null || die "missing: $PY (Debian: apt-get install python3 python3-torch, as root)"
    if ! "$PY" -c 'import torch' 2>/dev/null; then
        if [ "$PY" = /usr/bin/python3 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "bench: PyTorch is missing for /usr/bin/python3, installing python3-torch" >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch >/dev/null ||
                { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch >/dev/null; } ||
                die "apt-get install python3-torch failed"
        else
            die "missing: PyTorch for $PY (Debian: apt-get install python3-torch, as root)"
        fi
    fi
    find_peer
    find_bin
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/deep3d-bench.XXXXXX")
    SUMMARY=$WORK/summary.txt
    trap 'rm -rf "$WORK"' EXIT
    echo "bench: deep3d $BIN; peer $PEER with $PY (torch $("$PY" -c 'import torch; print(torch.__version__)'))" >&2

    local configs
    if [ $all = 1 ]; then configs="train:4 infer:1 infer:4"; else configs="$mode:$batch"; fi
    local c m b common rc=0
    for c in $configs; do
        m=${c%%:*} b=${c##*:}
        common="--variant $variant --mode $m --batch $b --width $width --height $height --threads $threads --iters $ITERS --warmup $WARMUP"
        bench_pair "cpu-$m-$b" "cpu $variant $m batch $b ${width}x$height ${threads}t" \
            "== cpu: $variant $m batch $b ${width}x$height $threads threads, $ROUNDS rounds x ($WARMUP warm-up + $ITERS timed)" \
            "--device cpu $common" "--device cpu $common" || rc=1
    done
    [ $all = 1 ] && print_summary
    return $rc
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -u
    cpu_main "$@"
fi

#!/usr/bin/env bash
# deep3d against the PyTorch peer on an NVIDIA GPU, in the same run (see bench/README.md).
#
#   bench/gpu.sh [--mode train|infer|all] [--precision fp32|tf32|bf16|all] [--batch N]
#                [--rounds R] [--width W --height H] [--variant released|vgg16]
#                [--iters N] [--warmup N] [--out FILE]
#
# Defaults: released variant, 384x160, batch 64, both modes, all three precisions,
# 3 rounds of (3 warm-up + 20 timed steps). For each mode and precision it alternates
# `build/deep3d bench --device cuda --precision P --json` (A) with the peer's
# `bench --device cuda` (B; --tf32 for tf32, --amp, bf16 autocast, for bf16) A B A B ...
# and prints the per-round images/s, the medians, the ratio deep3d/peer, TFLOP/s and
# host peak RSS, then one summary line per configuration.
#
# Needs an NVIDIA GPU (nvidia-smi), a Python whose PyTorch sees it (DEEP3D_PYTHON, else
# python3, else /usr/bin/python3), and deep3d built with CUDA (DEEP3D_BIN, else
# build/deep3d, built with make when missing). cuDNN and cuBLAS that exist only as
# PyTorch's pip packages (nvidia.cudnn, nvidia.cublas / nvidia/cu13) are found through
# that Python and used for the build (CPATH, LIBRARY_PATH) and the run (LD_LIBRARY_PATH).
# A configuration that fails (bf16 while deep3d does not implement it yet) is reported
# and the others still run; the exit status is then 1.

# shellcheck source=bench/cpu.sh
source "$(dirname "${BASH_SOURCE[0]}")/cpu.sh"
set -u

gpu_usage() {
    sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# The first Python whose PyTorch sees a CUDA device.
find_cuda_python() {
    local p
    for p in ${DEEP3D_PYTHON:-python3 /usr/bin/python3}; do
        if "$p" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
            PY=$(command -v "$p")
            return 0
        fi
    done
    die "no Python with a CUDA-enabled PyTorch that sees the GPU (tried: ${DEEP3D_PYTHON:-python3 /usr/bin/python3}); set DEEP3D_PYTHON"
}

# Folders of PyTorch's pip CUDA packages (site-packages/nvidia/*/lib and */include),
# one per line; nothing when that Python has none.
pip_cuda_dirs() {  # $1: lib or include
    local nv
    nv=$("$PY" -c 'import nvidia; print("\n".join(nvidia.__path__))' 2>/dev/null) || return 0
    while IFS= read -r d; do
        [ -d "$d" ] && find "$d" -mindepth 2 -maxdepth 2 -type d -name "$1"
    done <<<"$nv"
}

# Makes cuDNN and cuBLAS usable for building and running deep3d when they exist only as
# pip packages: their include folders go to CPATH (searched after -I$CUDA_HOME/include),
# unversioned links lib<name>.so (the wheels ship only lib<name>.so.<major>) to
# LIBRARY_PATH, and their lib folders to LD_LIBRARY_PATH.
setup_cuda_libs() {
    local libs incs cuda_home l f
    libs=$(pip_cuda_dirs lib | paste -sd:)
    incs=$(pip_cuda_dirs include | paste -sd:)
    [ -n "$libs" ] || return 0
    cuda_home=${CUDA_HOME:-$(dirname "$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")")}
    if ! printf '#include <cudnn.h>\n' | cc -E -I"$cuda_home/include" - >/dev/null 2>&1; then
        export CPATH="$incs${CPATH:+:$CPATH}"
        echo "bench: cudnn.h from PyTorch's pip packages (CPATH=$CPATH)" >&2
    fi
    mkdir -p "$WORK/cudalibs"
    for l in cudnn cublas cublasLt cudart; do
        if ! printf 'int main(void){return 0;}\n' | cc -x c - -o /dev/null -L"$cuda_home/lib64" -l$l 2>/dev/null; then
            f=$(IFS=:; for d in $libs; do ls "$d"/lib$l.so.* 2>/dev/null; done | sort | head -n 1)
            [ -n "$f" ] && ln -sf "$f" "$WORK/cudalibs/lib$l.so"
        fi
    done
    export LIBRARY_PATH="$WORK/cudalibs:$libs${LIBRARY_PATH:+:$LIBRARY_PATH}"
    export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}

gpu_main() {
    local modes="train infer" precisions="fp32 tf32 bf16" batch=64 width=384 height=160 variant=released
    ROUNDS=3 ITERS=20 WARMUP=3 OUTFILE=
    while [ $# -gt 0 ]; do
        case $1 in -h|--help) ;; *) [ $# -ge 2 ] || die "$1 needs a value" ;; esac
        case $1 in
            --mode) modes=$2; [ "$2" = all ] && modes="train infer"; shift ;;
            --precision) precisions=$2; [ "$2" = all ] && precisions="fp32 tf32 bf16"; shift ;;
            --batch) batch=$2; shift ;;
            --rounds) ROUNDS=$2; shift ;;
            --width) width=$2; shift ;;
            --height) height=$2; shift ;;
            --variant) variant=$2; shift ;;
            --iters) ITERS=$2; shift ;;
            --warmup) WARMUP=$2; shift ;;
            --out) OUTFILE=$2; shift ;;
            -h|--help) gpu_usage; exit 0 ;;
            *) die "unknown option '$1' (see bench/gpu.sh --help)" ;;
        esac
        shift
    done
    local m p
    for m in $modes; do case $m in train|infer) ;; *) die "--mode must be train, infer or all, got '$m'" ;; esac; done
    for p in $precisions; do case $p in fp32|tf32|bf16) ;; *) die "--precision must be fp32, tf32, bf16 or all, got '$p'" ;; esac; done
    for v in "$batch" "$ROUNDS" "$width" "$height" "$ITERS" "$WARMUP"; do
        [[ $v =~ ^[0-9]+$ ]] || die "expected a whole number, got '$v'"
    done

    command -v nvidia-smi >/dev/null ||
        die "no GPU: nvidia-smi not found (bench/gpu.sh needs an NVIDIA GPU; bench/cpu.sh runs without one)"
    nvidia-smi -L >/dev/null 2>&1 || die "no GPU: nvidia-smi -L fails: $(nvidia-smi -L 2>&1 | head -n 1)"
    find_cuda_python
    find_peer
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/deep3d-bench.XXXXXX")
    SUMMARY=$WORK/summary.txt
    trap 'rm -rf "$WORK"' EXIT
    setup_cuda_libs
    find_bin
    if ldd "$BIN" 2>/dev/null | grep -q 'not found'; then
        die "$BIN cannot load: $(ldd "$BIN" 2>/dev/null | grep 'not found' | tr -s ' \t' ' ' | paste -sd,)"
    fi
    # One tiny inference first, so that a CPU-only build or a missing GPU says so once.
    local err
    err=$("$BIN" bench --device cuda --mode infer --batch 1 --width 64 --height 32 --iters 1 --warmup 0 --json 2>&1 >/dev/null) ||
        die "deep3d cannot run on the GPU: $err"
    echo "bench: $(nvidia-smi -L | head -n 1)" >&2
    echo "bench: deep3d $BIN; peer $PEER with $PY (torch $("$PY" -c 'import torch; print(torch.__version__)'))" >&2

    local common peer_flag rc=0
    for m in $modes; do
        for p in $precisions; do
            case $p in fp32) peer_flag= ;; tf32) peer_flag=--tf32 ;; bf16) peer_flag=--amp ;; esac
            common="--variant $variant --mode $m --batch $batch --width $width --height $height --iters $ITERS --warmup $WARMUP"
            bench_pair "cuda-$m-$p" "cuda $variant $m batch $batch $p" \
                "== cuda $p: $variant $m batch $batch ${width}x$height, $ROUNDS rounds x ($WARMUP warm-up + $ITERS timed); peer ${peer_flag:-fp32}" \
                "--device cuda --precision $p $common" "--device cuda $peer_flag $common" || rc=1
        done
    done
    print_summary
    return $rc
}

gpu_main "$@"

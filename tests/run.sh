#!/usr/bin/env bash
# Runs both test programs and prints one closing summary line.
#   build/test_nn      float32 product build: layers vs naive references, model vs the
#                      PyTorch dump, data, weights, training, command line, CUDA (skips
#                      itself, saying so, without a GPU)
#   build/test_grad64  float64 build of nn/ and layers/: finite-difference gradient checks
set -u
jobs=${1:-2}
build=${2:-build}
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
# the command-line and training tests (tests/test_cli.c, tests/test_train.c) run this binary
export DEEP3D_BIN="$build/deep3d"
# sanitizer builds (make SANITIZE=1): a leak inside Criterion itself is not reported
# (tests/lsan.supp); any other sanitizer report fails the run, though Criterion
# counts a test whose process only reported a leak as passing
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
# and freed memory is reused at once (ASan's quarantine, 256 MB by default, would count
# in the peak-memory tests of tests/test_cli_render.c and tests/test_hostile.c)
export ASAN_OPTIONS="quarantine_size_mb=8${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
passed=0 failed=0 skipped=0 rc=0
for prog in "$build/test_nn" "$build/test_grad64"; do
    echo "== $prog"
    out=$("$prog" --jobs "$jobs" --verbose=0 2>&1); r=$?
    printf '%s\n' "$out" | grep -vE '^\[(----\] *$|RUN \]|PASS\])'
    [ $r -ne 0 ] && rc=1
    line=$(printf '%s\n' "$out" | grep 'Synthesis:' | tail -n 1 | sed 's/\x1b\[[0-9;]*m//g')
    if [ -z "$line" ]; then echo "$prog printed no summary"; rc=1; continue; fi
    t=$(echo "$line" | sed -n 's/.*Tested: \([0-9]*\).*/\1/p')
    p=$(echo "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
    f=$(echo "$line" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
    c=$(echo "$line" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
    s=$(printf '%s\n' "$out" | grep -c '\[SKIP\]')
    passed=$((passed + p)); failed=$((failed + f + c)); skipped=$((skipped + s))
    [ $((f + c)) -ne 0 ] && rc=1
    san=$(printf '%s\n' "$out" | grep -cE '^==[0-9]+==ERROR: [A-Za-z]+Sanitizer|runtime error:')
    if [ "$san" -ne 0 ]; then echo "$prog: $san sanitizer report(s) above"; failed=$((failed + san)); rc=1; fi
    : "$t"
done
echo "total: $passed passed, $failed failed, $skipped skipped"
exit $rc

#!/usr/bin/env bash
# Compares every ISA's kernel table with the scalar one (tests/native/isa_equivalence.cpp),
# without Python: the isa/ translation units are compiled directly, each with the flags
# CMakeLists.txt gives it.
#
#   1. native x86-64 build (scalar, sse2, avx2, avx512) and run; the avx512 table is always
#      compiled, and run only where the CPU has AVX-512.
#   2. aarch64 cross build (scalar, neon), static so that user-mode qemu needs no sysroot,
#      run under qemu-aarch64 when it is installed.
#
# Needs g++ (or $CXX); for step 2 aarch64-linux-gnu-g++ (or $AARCH64_CXX) and qemu-aarch64
# or qemu-aarch64-static (Debian: g++-aarch64-linux-gnu, qemu-user). Without the cross
# compiler step 2 is skipped, unless LOGITKIT_REQUIRE_CROSS=1. Arguments go to the harness
# ([-v] [seed]). The last line totals both runs; the exit status is non-zero on any failure.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"

build=$(mktemp -d "${TMPDIR:-/tmp}/logitkit-isa.XXXXXX")
trap 'rm -rf "$build"' EXIT

# As in CMakeLists.txt (C++17 without GNU extensions, no -ffast-math: the kernels rely on
# IEEE NaN and infinity), at -O2.
common=(-std=c++17 -O2 -Wall -Wextra -fno-math-errno -ffp-contract=off -Icsrc)
harness=tests/native/isa_equivalence.cpp
status=0 passed=0 failed=0

compile() {
  local cxx=$1 out=$2 src=$3
  shift 3
  "$cxx" "${common[@]}" "$@" -c "$src" -o "$out"
}

# build_and_link CXX DIR LINKFLAGS -- NAME:FLAGS...  (one entry per csrc/isa/ unit). The
# units compile in parallel: the avx512 one alone takes most of the build time.
build_and_link() {
  local cxx=$1 dir=$2 link=$3
  shift 4
  mkdir -p "$dir"
  local pids=() objs=() defines=() entry name flags
  for entry in "$@"; do
    name=${entry%%:*}
    flags=${entry#*:}
    # shellcheck disable=SC2086  # flags is a space-separated list by construction
    compile "$cxx" "$dir/isa_$name.o" "csrc/isa/isa_$name.cpp" $flags &
    pids+=($!)
    objs+=("$dir/isa_$name.o")
    if [[ $name != scalar ]]; then defines+=("-DHAVE_${name^^}"); fi
  done
  compile "$cxx" "$dir/harness.o" "$harness" ${defines[@]+"${defines[@]}"} &
  pids+=($!)
  local failed_jobs=0 pid
  for pid in "${pids[@]}"; do wait "$pid" || failed_jobs=1; done
  if ((failed_jobs)); then
    echo "error: build failed ($cxx)" >&2
    return 1
  fi
  # shellcheck disable=SC2086
  "$cxx" $link "$dir/harness.o" "${objs[@]}" -o "$dir/isa_equivalence" -lm
}

# run_harness NAME COMMAND...: runs it and adds its closing "N passed, M failed" to the
# totals; a run that ends without one (a crash) counts as one failure.
run_harness() {
  local log="$build/$1.log" rc=0 line p f
  shift
  "$@" 2>&1 | tee "$log" || rc=$?
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1 || true)
  if [[ -z $line ]]; then
    echo "error: the harness stopped without a summary (exit status $rc)" >&2
    failed=$((failed + 1))
    status=1
    return
  fi
  read -r p _ f _ <<< "$line"
  passed=$((passed + p))
  failed=$((failed + f))
  if ((rc != 0)); then status=1; fi
}

finish() {
  echo "total: $passed passed, $failed failed"
  exit "$status"
}

elapsed() { echo "$((SECONDS - $1))s"; }

arch=$(uname -m)

echo "== native build ($arch)"
t0=$SECONDS
native=()
# GCC 12's avx512fintrin.h initialises _mm512_undefined_* from itself, which floods the
# avx512 build with -W(maybe-)uninitialized false positives; warnings only, code unchanged.
avx512_quiet="-Wno-uninitialized -Wno-maybe-uninitialized"
case $arch in
  x86_64 | amd64)
    native=("scalar:" "sse2:" "avx2:-mavx2 -mfma -mf16c"
      "avx512:-mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma -mf16c $avx512_quiet")
    ;;
  aarch64 | arm64) native=("scalar:" "neon:") ;;
  *) native=("scalar:") ;;
esac
build_and_link "${CXX:-g++}" "$build/native" "" -- "${native[@]}"
echo "built in $(elapsed "$t0")"
t0=$SECONDS
run_harness native "$build/native/isa_equivalence" "$@"
echo "native run: $(elapsed "$t0")"

if [[ $arch == aarch64 || $arch == arm64 ]]; then
  echo "== neon ran natively above; no cross build needed"
  finish
fi

echo "== aarch64 cross build (neon)"
cross=${AARCH64_CXX:-aarch64-linux-gnu-g++}
if ! command -v "$cross" > /dev/null; then
  if [[ ${LOGITKIT_REQUIRE_CROSS:-0} == 1 ]]; then
    echo "error: $cross not found and LOGITKIT_REQUIRE_CROSS=1" \
      "(apt-get install g++-aarch64-linux-gnu qemu-user)" >&2
    status=1
    finish
  fi
  echo "SKIPPED: $cross not found, the NEON kernels were neither compiled nor run"
  echo "         (apt-get install g++-aarch64-linux-gnu qemu-user to check them)"
  finish
fi
t0=$SECONDS
build_and_link "$cross" "$build/aarch64" "-static" -- "scalar:" "neon:"
echo "built in $(elapsed "$t0")"

qemu=""
for candidate in qemu-aarch64 qemu-aarch64-static; do
  if command -v "$candidate" > /dev/null; then
    qemu=$candidate
    break
  fi
done
if [[ -z $qemu ]]; then
  echo "NOT RUN: no qemu-aarch64 or qemu-aarch64-static, the NEON kernels were only compiled"
  echo "         (apt-get install qemu-user to run them under emulation)"
  finish
fi
t0=$SECONDS
echo "running under $qemu"
run_harness aarch64 "$qemu" "$build/aarch64/isa_equivalence" "$@"
echo "aarch64 run: $(elapsed "$t0")"
finish

#!/usr/bin/env bash
# Compares every ISA's kernel table with the scalar one (tests/native/isa_equivalence.cpp),
# without Python: CMake builds the harness target, isa_equivalence, in a temporary folder
# (-DLOGITKIT_BUILD_ISA_HARNESS=ON -DLOGITKIT_BUILD_MODULE=OFF), from the translation units
# and with the flags that csrc/isa/isas.cmake gives the architecture.
#
#   1. native build (on x86-64: scalar, sse2, avx2, avx512, avx512bf16) and run; the tables
#      this CPU runs, as an installed logitkit names them, or (without one, or with
#      LOGITKIT_ISA_HARNESS_ALL=1) every table of the architecture, run only where the CPU
#      has its instructions.
#   2. aarch64 cross build (scalar, neon) with tests/native/aarch64-linux-gnu.cmake, static so
#      that user-mode qemu needs no sysroot, run under qemu-aarch64 when it is installed.
#
# Needs cmake (and ninja, when found) and a C++17 compiler (CMake's choice, or $CXX); for
# step 2 aarch64-linux-gnu-g++ (or $AARCH64_CXX) and qemu-aarch64 or qemu-aarch64-static
# (Debian: g++-aarch64-linux-gnu, qemu-user). Without the cross compiler step 2 is skipped,
# unless LOGITKIT_REQUIRE_CROSS=1.
# Arguments go to the harness ([-v] [seed]). The last line totals both runs; the exit status
# is non-zero on any failure.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"

build=$(mktemp -d "${TMPDIR:-/tmp}/logitkit-isa.XXXXXX")
trap 'rm -rf "$build"' EXIT

status=0 passed=0 failed=0
generator=()
if command -v ninja > /dev/null; then generator=(-G Ninja); fi
jobs=$(nproc 2> /dev/null || echo 2)

# build_harness DIR [CMAKE ARGS...]: configures and builds the harness target in DIR; the
# compiler's output goes to DIR.build.log, shown only when the build fails (GCC 12's
# avx512fintrin.h floods the avx512 units with -W(maybe-)uninitialized false positives).
build_harness() {
  local dir=$1
  shift
  if ! cmake -S "$repo" -B "$dir" "${generator[@]+"${generator[@]}"}" \
    -DCMAKE_BUILD_TYPE=Release -DLOGITKIT_BUILD_MODULE=OFF -DLOGITKIT_BUILD_ISA_HARNESS=ON "$@" \
    > "$dir.configure.log" 2>&1; then
    cat "$dir.configure.log" >&2
    echo "error: cmake configure failed" >&2
    return 1
  fi
  grep -E 'logitkit kernel tables' "$dir.configure.log" || true
  if ! cmake --build "$dir" --target isa_equivalence --parallel "$jobs" \
    > "$dir.build.log" 2>&1; then
    cat "$dir.build.log" >&2
    echo "error: build failed" >&2
    return 1
  fi
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

# A table this CPU cannot run is only compiled here, as it is for the module: where an
# installed logitkit names the tables this CPU runs, the harness builds those alone
# (LOGITKIT_ISA_HARNESS_ALL=1 builds every table of the architecture anyway).
only_isas=""
if [[ ${LOGITKIT_ISA_HARNESS_ALL:-0} != 1 ]]; then
  # shellcheck source=tests/native/host_isas.sh
  source "$repo/tests/native/host_isas.sh"
  only_isas=$(host_isas "${PYTHON:-python3}")
fi
echo "== native build ($arch)"
t0=$SECONDS
build_harness "$build/native" -DLOGITKIT_ONLY_ISAS="$only_isas"
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
AARCH64_CXX=$cross build_harness "$build/aarch64" \
  -DCMAKE_TOOLCHAIN_FILE="$repo/tests/native/aarch64-linux-gnu.cmake"
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

#!/usr/bin/env bash
# Sanitizer runs of the native code.
#
#   tests/native/run_sanitized.sh address [pytest args...]   the Python test suite against a
#                                                            build under AddressSanitizer+UBSan
#   tests/native/run_sanitized.sh thread                     tests/native/thread_safety.cpp
#                                                            under ThreadSanitizer
#
# address: the module is built with CMake (-O1 -g1, the flags below) into a temporary
# folder, next to a copy of python/logitkit, which goes first on PYTHONPATH: the installed
# logitkit is not touched.
#
# thread: ThreadSanitizer's runtime cannot be preloaded into the Python interpreter here (it
# crashes at start-up on this kernel), so the library's translation units are linked into a
# C++ program that calls the driver from several threads at once, as concurrent Python
# threads do with the GIL released. ThreadSanitizer does not see inside GCC's OpenMP runtime
# (libgomp is not instrumented, and its barriers look like races), so that build leaves
# OpenMP out; the OpenMP loops are covered by the determinism tests.
#
# Every sanitizer stops the process at its first report (halt_on_error, no recovery from
# UBSan), so a clean pass means zero reports.
#
# Needs: the Python of the environment under test, a C++17 g++ with the sanitizer runtimes,
# and pybind11, cmake and ninja importable or on PATH (pip install pybind11 cmake ninja).
set -euo pipefail

kind=${1:?usage: run_sanitized.sh address|thread [pytest args...]}
shift
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
# LOGITKIT_SANITIZER_BUILD=DIR keeps the build in DIR between runs (incremental rebuilds);
# by default it goes to a temporary folder, removed at the end.
if [[ -n ${LOGITKIT_SANITIZER_BUILD:-} ]]; then
  build=$LOGITKIT_SANITIZER_BUILD/$kind
  mkdir -p "$build"
  rm -rf "$build/pkg"
else
  build=$(mktemp -d "${TMPDIR:-/tmp}/logitkit-$kind-san.XXXXXX")
  trap 'rm -rf "$build"' EXIT
fi

python=${PYTHON:-python}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
case $kind in
  address)
    flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
    runtimes="$(g++ -print-file-name=libasan.so):$(g++ -print-file-name=libubsan.so)"
    extra_cmake=()
    # Python itself frees what it likes at exit: leaks are not what this run looks for.
    export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1:strict_string_checks=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    ;;
  thread)
    export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
    echo "== building tests/native/thread_safety.cpp with -fsanitize=thread in $build"
    tsan=(-fsanitize=thread -fno-omit-frame-pointer)
    # The ISA tables, each with the flags csrc/isa/isas.cmake gives it, come from CMake's static
    # library logitkit_isa_tables (no Python module, no OpenMP); the rest of the library and
    # the test are compiled here, with the same options.
    cmake -S . -B "$build/cmake" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
      -DCMAKE_CXX_FLAGS="${tsan[*]}" -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" \
      -DLOGITKIT_BUILD_MODULE=OFF -DLOGITKIT_BUILD_ISA_HARNESS=ON > "$build/configure.log" ||
      { cat "$build/configure.log"; exit 1; }
    cmake --build "$build/cmake" --target logitkit_isa_tables > "$build/build.log" ||
      { cat "$build/build.log"; exit 1; }
    common=(-std=c++17 -O1 -g "${tsan[@]}" -fno-math-errno -ffp-contract=off -Icsrc
      -I"$build/cmake/generated" -DLOGITKIT_VERSION="\"$version\"")
    units=(csrc/parallel/*.cpp csrc/runtime/runtime.cpp csrc/runtime/buffer_pool.cpp
      tests/native/thread_safety.cpp)
    objects=()
    pids=()
    for unit in "${units[@]}"; do
      name=$(basename "$unit" .cpp)
      g++ "${common[@]}" -c "$unit" -o "$build/$name.o" &
      pids+=($!)
      objects+=("$build/$name.o")
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    g++ -fsanitize=thread "${objects[@]}" "$build/cmake/liblogitkit_isa_tables.a" \
      -o "$build/thread_safety" -lpthread
    echo "== tests/native/thread_safety under ThreadSanitizer"
    "$build/thread_safety"
    exit 0
    ;;
  *)
    echo "unknown sanitizer '$kind' (address or thread)" >&2
    exit 2
    ;;
esac

# Only the tables this CPU runs are worth instrumenting: the installed logitkit says which
# (without one, every table of the architecture is built). -O1 -g1 rather than -O2 -g: line
# tables are all a report's stack needs. On an AMD EPYC (2 cores) the build took 3.5 min
# instead of 11, and .ci/run's files ran as fast (10.4 min at -O1 -g, 10.6 at -O1 -g1, 10.7
# at -O2 -g). The binding files, with no math in them, are compiled at -O0, which halves
# their build time.
# shellcheck source=tests/native/host_isas.sh
source "$repo/tests/native/host_isas.sh"
only_isas=$(host_isas "$python")
echo "== building logitkit._core with -fsanitize ($kind) in $build," \
  "tables: ${only_isas:-all of this architecture}"
cmake -S . -B "$build/cmake" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DLOGITKIT_ONLY_ISAS="$only_isas" \
  -DLOGITKIT_BINDINGS_OPTIONS=-O0 \
  -DCMAKE_CXX_FLAGS="$flags" -DLOGITKIT_VERSION="$version" -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF \
  -DPython_EXECUTABLE="$(command -v "$python")" \
  -Dpybind11_DIR="$("$python" -m pybind11 --cmakedir)" \
  "${extra_cmake[@]+"${extra_cmake[@]}"}" > "$build/configure.log" ||
  { cat "$build/configure.log"; exit 1; }
cmake --build "$build/cmake" > "$build/build.log" || { cat "$build/build.log"; exit 1; }
mkdir -p "$build/pkg"
cp -r python/logitkit "$build/pkg/"
cp "$build"/cmake/_core*.so "$build/pkg/logitkit/"

echo "== pytest under the $kind sanitizer"
# The huge-array tests would take minutes under the sanitizers; they run in the plain suite.
LOGITKIT_SANITIZED=$kind LD_PRELOAD="$runtimes" PYTHONPATH="$build/pkg" \
  "$python" -m pytest -p no:cacheprovider -q "$@"

# The instruction sets logitkit compiles its kernels for: the one list that the build, the
# runtime and the native ISA harness are generated from (by csrc/isa/generate.cmake).
#
# One logitkit_isa() entry per target:
#   name       as in isa_names(), LOGITKIT_ISA and use_isa(); also a C++ identifier
#   ARCH       the architecture it is compiled for: x86_64, aarch64, or any
#   HEADER     the simd/ header defining its vector types VF32 and VF64 ...
#   NAMESPACE  ... in logitkit::simd::<NAMESPACE>
#   FLAGS      compile options of its translation unit, and of nothing else: the rest of the
#              library is built for the architecture's baseline, never -march=native
#   MSVC_FLAGS the same for MSVC, whose /arch switches stand for GCC's and Clang's -m flags.
#              A target with FLAGS but no MSVC_FLAGS is left out of MSVC builds (the runtime
#              then knows it by name only, as it knows other architectures' targets)
#   REQUIRES   what the CPU must have, in words (the harness prints it when it skips one)
#
# The list is in order of preference, slowest first. runtime::Isa numbers the targets in this
# order (isa_names() lists them so), and best_isa() picks the last one that is compiled in and
# that the CPU supports. Targets of other architectures are known by name but not compiled.
#
# To add a target:
#   1. Write its vector types in a simd/ header, in a namespace of their own even when they
#      reuse another target's code (as simd/avx512bf16.h does): code inlined from a header
#      must never be shared between translation units compiled with different flags.
#   2. Add its entry below, at its place in the order.
#   3. Write its CPU check, `bool supports_<name>()`, next to the others in
#      runtime/runtime.cpp (CPUID and XGETBV on x86): the build stops until it exists.
#   4. Run tests/native/check_isas.sh (every table against the scalar one) and the golden
#      tests, and record the new target's digests as tests/golden/make_golden.py says.
# The rest follows from the entry: the translation unit (from isa.cpp.in), the runtime::Isa
# value and its name, the compiled and supported checks, best_isa(), the table accessor and
# the harness's list of tables.

logitkit_isa(scalar
  ARCH any
  HEADER simd/scalar.h NAMESPACE scalar
  REQUIRES "nothing")

logitkit_isa(sse2
  ARCH x86_64
  HEADER simd/sse2.h NAMESPACE sse2
  REQUIRES "SSE2 (part of x86-64)")

logitkit_isa(neon
  ARCH aarch64
  HEADER simd/neon.h NAMESPACE neon
  REQUIRES "NEON (part of AArch64)")

logitkit_isa(avx2
  ARCH x86_64
  HEADER simd/avx2.h NAMESPACE avx2
  FLAGS -mavx2 -mfma -mf16c
  MSVC_FLAGS /arch:AVX2
  REQUIRES "AVX2, FMA and F16C")

logitkit_isa(avx512
  ARCH x86_64
  HEADER simd/avx512.h NAMESPACE avx512
  FLAGS -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma -mf16c
  MSVC_FLAGS /arch:AVX512
  REQUIRES "AVX-512 F, BW, DQ and VL")

logitkit_isa(avx512bf16
  ARCH x86_64
  HEADER simd/avx512bf16.h NAMESPACE avx512bf16
  FLAGS -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512bf16 -mavx2 -mfma -mf16c
  # no MSVC_FLAGS: /arch:AVX512 does not define __AVX512BF16__, which simd/avx512bf16.h needs
  REQUIRES "AVX-512 F, BW, DQ, VL and BF16")

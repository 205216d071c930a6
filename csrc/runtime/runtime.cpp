#include "runtime/runtime.h"

#include <cstdlib>
#include <cstring>

#include "runtime/tables.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

#if defined(__x86_64__) || defined(_M_X64)
#define LOGITKIT_X86 1
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#endif

namespace logitkit::runtime {

namespace {

struct X86Features {
  bool sse2 = false;        // part of x86-64
  bool avx2 = false;        // AVX2 + FMA + F16C, with the OS saving YMM state
  bool avx512 = false;      // F + BW + DQ + VL, with the OS saving ZMM and mask state
  bool avx512bf16 = false;  // avx512 + AVX512_BF16 (no state of its own)
};

#if defined(LOGITKIT_X86)
#if defined(_MSC_VER) && !defined(__clang__)
// CPUID leaf/subleaf into a, b, c, d; false when the CPU has no such leaf.
bool cpuid(unsigned int leaf, unsigned int subleaf, unsigned int& a, unsigned int& b,
           unsigned int& c, unsigned int& d) {
  int regs[4];
  __cpuid(regs, 0);
  if (static_cast<unsigned int>(regs[0]) < leaf) return false;
  __cpuidex(regs, static_cast<int>(leaf), static_cast<int>(subleaf));
  a = regs[0], b = regs[1], c = regs[2], d = regs[3];
  return true;
}

unsigned long long xgetbv0() { return _xgetbv(0); }
#else
bool cpuid(unsigned int leaf, unsigned int subleaf, unsigned int& a, unsigned int& b,
           unsigned int& c, unsigned int& d) {
  return __get_cpuid_count(leaf, subleaf, &a, &b, &c, &d) != 0;
}

unsigned long long xgetbv0() {
  unsigned int lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
}
#endif

X86Features detect_x86() {
  X86Features f;
  f.sse2 = true;
  unsigned int a = 0, b = 0, c = 0, d = 0;
  if (!cpuid(1, 0, a, b, c, d)) return f;
  const bool osxsave = c & (1u << 27);
  const bool avx = c & (1u << 28);
  const bool fma = c & (1u << 12);
  const bool f16c = c & (1u << 29);
  if (!osxsave || !avx) return f;
  // The OS must enable the register state in XCR0, or the instructions fault even when CPUID
  // advertises them (e.g. AVX-512 disabled by a hypervisor).
  const unsigned long long xcr0 = xgetbv0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;     // SSE and AVX state
  const bool zmm_state = (xcr0 & 0xe6) == 0xe6;   // plus opmask, ZMM_Hi256, Hi16_ZMM
  if (!cpuid(7, 0, a, b, c, d)) return f;
  const unsigned int leaf7_subleaves = a;  // the highest subleaf of leaf 7
  const bool avx2 = b & (1u << 5);
  f.avx2 = ymm_state && avx2 && fma && f16c;
  const bool avx512f = b & (1u << 16), avx512dq = b & (1u << 17);
  const bool avx512bw = b & (1u << 30), avx512vl = b & (1u << 31);
  f.avx512 = f.avx2 && zmm_state && avx512f && avx512dq && avx512bw && avx512vl;
  if (leaf7_subleaves < 1 || !cpuid(7, 1, a, b, c, d)) return f;
  const bool avx512bf16 = a & (1u << 5);
  f.avx512bf16 = f.avx512 && avx512bf16;
  return f;
}
#else
X86Features detect_x86() { return {}; }
#endif

const X86Features& x86_features() {
  static const X86Features f = detect_x86();
  return f;
}

#if defined(__aarch64__)
constexpr bool kAarch64 = true;
#else
constexpr bool kAarch64 = false;
#endif

// Whether this CPU, and the OS, can run a target's instructions: one check per target of
// csrc/isa/isas.cmake, named supports_<name>, whether or not this build compiles the target.
bool supports_scalar() { return true; }
bool supports_sse2() { return x86_features().sse2; }
bool supports_neon() { return kAarch64; }  // part of AArch64
bool supports_avx2() { return x86_features().avx2; }
bool supports_avx512() { return x86_features().avx512; }
bool supports_avx512bf16() { return x86_features().avx512bf16; }

const IsaTable* compiled_table(Isa isa) {
  switch (isa) {
#define LOGITKIT_ISA_CASE(name, requirement) \
  case Isa::name: return isa_table_##name();
    LOGITKIT_COMPILED_ISAS(LOGITKIT_ISA_CASE)
#undef LOGITKIT_ISA_CASE
    default: return nullptr;
  }
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
#define LOGITKIT_ISA_CASE(name, requirement) \
  case Isa::name: return #name;
    LOGITKIT_ISAS(LOGITKIT_ISA_CASE)
#undef LOGITKIT_ISA_CASE
    default: return "unknown";
  }
}

std::vector<Isa> all_isas() {
#define LOGITKIT_ISA_VALUE(name, requirement) Isa::name,
  return {LOGITKIT_ISAS(LOGITKIT_ISA_VALUE)};
#undef LOGITKIT_ISA_VALUE
}

bool is_compiled(Isa isa) {
  switch (isa) {
#define LOGITKIT_ISA_CASE(name, requirement) \
  case Isa::name: return true;
    LOGITKIT_COMPILED_ISAS(LOGITKIT_ISA_CASE)
#undef LOGITKIT_ISA_CASE
    default: return false;
  }
}

bool cpu_supports(Isa isa) {
  switch (isa) {
#define LOGITKIT_ISA_CASE(name, requirement) \
  case Isa::name: return supports_##name();
    LOGITKIT_ISAS(LOGITKIT_ISA_CASE)
#undef LOGITKIT_ISA_CASE
    default: return false;
  }
}

// The list is slowest first: the last target that runs here is the best.
Isa best_isa() {
  for (int i = static_cast<int>(Isa::count) - 1; i > 0; --i) {
    const auto isa = static_cast<Isa>(i);
    if (is_compiled(isa) && cpu_supports(isa)) return isa;
  }
  return Isa::scalar;
}

const IsaTable* usable_table(Isa isa) {
  if (!is_compiled(isa) || !cpu_supports(isa)) return nullptr;
  return compiled_table(isa);
}

bool openmp_enabled() {
#if defined(_OPENMP)
  return true;
#else
  return false;
#endif
}

int hardware_threads() {
#if defined(_OPENMP)
  return omp_get_num_procs();
#else
  return 1;
#endif
}

int default_threads() {
  if (const char* env = std::getenv("LOGITKIT_NUM_THREADS")) {
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v > 0) return v > 4096 ? 4096 : static_cast<int>(v);
  }
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

int resolve_threads(int requested) {
  const int t = requested > 0 ? requested : default_threads();
#if defined(_OPENMP)
  return t;
#else
  (void)t;
  return 1;
#endif
}

}  // namespace logitkit::runtime

// Storage types: float16 (IEEE half) and bfloat16 are formats of an operand in memory, not
// types the kernels compute in. A kernel over a row of S computes in compute_t<S> (float for
// both 16-bit formats) and converts in its own loads and stores: every simd/ vector type
// loads and stores half_t and bf16_t next to float, converting in registers.
//
// The conversions are exact operations (to nearest even, NaN kept NaN and quiet, overflow to
// inf, half's subnormals exact), so every target gives the same bits: the scalar code below
// is the specification the vector conversions are tested against.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#if defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <xmmintrin.h>
#endif

namespace logitkit {

struct half_t {
  std::uint16_t bits;
};
struct bf16_t {
  std::uint16_t bits;
};

template <class S>
struct compute_type {
  using type = S;
};
template <>
struct compute_type<half_t> {
  using type = float;
};
template <>
struct compute_type<bf16_t> {
  using type = float;
};
// The type a kernel over S computes in.
template <class S>
using compute_t = typename compute_type<S>::type;

// Asks for the 64-byte lines of [p, p + bytes) to be brought into the cache while other work
// goes on. A hint: it never faults, so p may point past the end of an array.
inline void prefetch_lines(const void* p, std::ptrdiff_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (std::ptrdiff_t i = 0; i < bytes; i += 64) {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(c + i, 0, 3);
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
    _mm_prefetch(c + i, _MM_HINT_T0);
#else
    (void)c;
#endif
  }
}

template <class S>
constexpr bool is_storage16 = std::is_same_v<S, half_t> || std::is_same_v<S, bf16_t>;

// Internal linkage on purpose: each ISA's translation unit keeps its own compiled copy, so
// that code the compiler vectorised for AVX-512 there can never stand in for the baseline's.
namespace {

inline std::uint32_t float_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

inline float bits_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline float half_to_float_one(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  if (exponent == 0x1f) return bits_float(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float
    const float magnitude = float(mantissa) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
  }
  return bits_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

inline std::uint16_t float_to_half_one(float f) {
  const std::uint32_t u = float_bits(f);
  const auto sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  const std::uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x1ffu));
  // 65520 and above round to inf (65520 is the tie between 65504 and 2^16, and 65504 is odd)
  if (a >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);
  if (a < 0x38800000u) {  // below 2^-14: a multiple of 2^-24 after rounding (1024 = 2^-14)
    const float scaled = bits_float(a) * 0x1p24f;  // exact: a power-of-two scaling
    return static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(std::nearbyint(scaled)));
  }
  // Rebias the exponent (127 -> 15) and round the 13 dropped bits to nearest even; a carry
  // out of the mantissa correctly bumps the exponent.
  const std::uint32_t rounded = a - 0x38000000u + 0xfffu + ((a >> 13) & 1u);
  return static_cast<std::uint16_t>(sign | (rounded >> 13));
}

inline float bf16_to_float_one(std::uint16_t b) { return bits_float(std::uint32_t(b) << 16); }

inline std::uint16_t float_to_bf16_one(float f) {
  const std::uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// One element of S in its compute type, and back. The identities make the generic kernels'
// scalar edges (tails, special rows, single entries) read the same for every S.
inline float widen(float x) { return x; }
inline double widen(double x) { return x; }
inline float widen(half_t x) { return half_to_float_one(x.bits); }
inline float widen(bf16_t x) { return bf16_to_float_one(x.bits); }

template <class S>
inline S narrow(compute_t<S> x) {
  if constexpr (std::is_same_v<S, half_t>) {
    return half_t{float_to_half_one(x)};
  } else if constexpr (std::is_same_v<S, bf16_t>) {
    return bf16_t{float_to_bf16_one(x)};
  } else {
    return x;
  }
}

}  // namespace

}  // namespace logitkit

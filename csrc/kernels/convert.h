// Conversions between float32 and the 16-bit storage formats, IEEE half (float16) and
// bfloat16: to nearest even, NaN kept NaN (quiet), overflow to inf, half's subnormals exact.
// These are exact operations, so every target must give the same bits: x86 builds with F16C
// convert half in registers, aarch64 with its conversion instructions, the others with the
// portable bit-level code below (whose bfloat16 loops the compiler vectorises).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__F16C__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace logitkit::LOGITKIT_ISA_NS {

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

inline void half_to_float(const std::uint16_t* src, float* dst, std::ptrdiff_t n) {
  std::ptrdiff_t i = 0;
#if defined(__F16C__)
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
#elif defined(__aarch64__)
  for (; i + 4 <= n; i += 4) {
    vst1q_f32(dst + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(src + i))));
  }
#endif
  for (; i < n; ++i) dst[i] = half_to_float_one(src[i]);
}

inline void float_to_half(const float* src, std::uint16_t* dst, std::ptrdiff_t n) {
  std::ptrdiff_t i = 0;
#if defined(__F16C__)
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
#elif defined(__aarch64__)
  for (; i + 4 <= n; i += 4) {
    vst1_u16(dst + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(src + i))));
  }
#endif
  for (; i < n; ++i) dst[i] = float_to_half_one(src[i]);
}

inline void bf16_to_float(const std::uint16_t* src, float* dst, std::ptrdiff_t n) {
  for (std::ptrdiff_t i = 0; i < n; ++i) dst[i] = bf16_to_float_one(src[i]);
}

inline void float_to_bf16(const float* src, std::uint16_t* dst, std::ptrdiff_t n) {
  for (std::ptrdiff_t i = 0; i < n; ++i) dst[i] = float_to_bf16_one(src[i]);
}

}  // namespace logitkit::LOGITKIT_ISA_NS

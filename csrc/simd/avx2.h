// AVX2 + FMA (+ F16C for the half-precision paths): 8 floats or 4 doubles per vector.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "simd/storage.h"

namespace logitkit::simd::avx2 {

struct VF32 {
  using T = float;
  static constexpr int N = 8;
  struct Mask {
    __m256 m;
  };
  __m256 v;

  static VF32 load(const float* p) { return {_mm256_loadu_ps(p)}; }
  static VF32 set1(float x) { return {_mm256_set1_ps(x)}; }
  static VF32 zero() { return {_mm256_setzero_ps()}; }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  // Non-temporal store, bypassing the cache: p must be aligned to the vector size, and
  // stream_fence() must follow the last one before other threads read the data.
  void stream(float* p) const { _mm256_stream_ps(p, v); }
  static void stream_fence() { _mm_sfence(); }

  // The 16-bit storage types, converted in registers (see simd/storage.h): half with F16C;
  // bfloat16 is the high half of a float, narrowed to nearest even with NaN made quiet.
  static VF32 load(const half_t* p) {
    return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))};
  }
  static VF32 load(const bf16_t* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return {_mm256_castsi256_ps(_mm256_slli_epi32(w, 16))};
  }
  __m128i half_bits() const { return _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT); }
  __m128i bf16_bits() const {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i rounded =
        _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    const __m256i bits = _mm256_blendv_epi8(rounded, quiet, nan);
    // the two 128-bit halves packed into one: a lane-crossing permute of a 256-bit pack
    // costs more on Zen 3
    return _mm_packus_epi32(_mm256_castsi256_si128(bits), _mm256_extracti128_si256(bits, 1));
  }
  void store(half_t* p) const { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), half_bits()); }
  void store(bf16_t* p) const { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), bf16_bits()); }
  void stream(half_t* p) const { _mm_stream_si128(reinterpret_cast<__m128i*>(p), half_bits()); }
  void stream(bf16_t* p) const { _mm_stream_si128(reinterpret_cast<__m128i*>(p), bf16_bits()); }

  friend VF32 operator+(VF32 a, VF32 b) { return {_mm256_add_ps(a.v, b.v)}; }
  friend VF32 operator-(VF32 a, VF32 b) { return {_mm256_sub_ps(a.v, b.v)}; }
  friend VF32 operator*(VF32 a, VF32 b) { return {_mm256_mul_ps(a.v, b.v)}; }
  friend VF32 operator/(VF32 a, VF32 b) { return {_mm256_div_ps(a.v, b.v)}; }
  friend VF32 fma(VF32 a, VF32 b, VF32 c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
  friend VF32 max_(VF32 a, VF32 b) { return {_mm256_max_ps(a.v, b.v)}; }
  friend VF32 min_(VF32 a, VF32 b) { return {_mm256_min_ps(a.v, b.v)}; }
  // vmaxps/vminps return their second operand when either is NaN: keeping x second keeps NaN.
  friend VF32 clamp_keep_nan(VF32 x, VF32 lo, VF32 hi) {
    return {_mm256_min_ps(hi.v, _mm256_max_ps(lo.v, x.v))};
  }
  friend VF32 bits_xor(VF32 a, VF32 b) { return {_mm256_xor_ps(a.v, b.v)}; }
  friend VF32 abs_(VF32 a) {
    return {_mm256_and_ps(a.v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)))};
  }
  friend Mask eq(VF32 a, VF32 b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_EQ_OQ)}; }
  friend Mask ne(VF32 a, VF32 b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_NEQ_UQ)}; }
  friend Mask lt(VF32 a, VF32 b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_LT_OQ)}; }
  friend Mask le(VF32 a, VF32 b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_LE_OQ)}; }
  friend VF32 select(Mask m, VF32 a, VF32 b) { return {_mm256_blendv_ps(b.v, a.v, m.m)}; }
  friend Mask mask_or(Mask a, Mask b) { return {_mm256_or_ps(a.m, b.m)}; }
  friend bool all_(Mask m) { return _mm256_movemask_ps(m.m) == 0xff; }
  // 2^k from n = round_magic + bias + k (|k| small): the low bits of n moved into the exponent.
  friend VF32 shift_into_exponent(VF32 n) {
    return {_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(n.v), 23))};
  }
  friend float reduce_max(VF32 a) {
    __m128 t = _mm_max_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
    t = _mm_max_ps(t, _mm_movehl_ps(t, t));
    t = _mm_max_ss(t, _mm_shuffle_ps(t, t, 1));
    return _mm_cvtss_f32(t);
  }
  friend double reduce_add(VF32 a) {
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(a.v));
    const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(a.v, 1));
    const __m256d s = _mm256_add_pd(lo, hi);
    const __m128d t = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    return _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
  }
  friend VF32 pow2i(VF32 k) {
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(k.v), _mm256_set1_epi32(127));
    return {_mm256_castsi256_ps(_mm256_slli_epi32(e, 23))};
  }
  friend VF32 split_exponent(VF32 x, VF32& e) {
    const __m256i bits = _mm256_castps_si256(x.v);
    e.v = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(127)));
    const __m256i mant = _mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff));
    return {_mm256_castsi256_ps(_mm256_or_si256(mant, _mm256_set1_epi32(0x3f800000)))};
  }
};

struct VF64 {
  using T = double;
  static constexpr int N = 4;
  struct Mask {
    __m256d m;
  };
  __m256d v;

  static VF64 load(const double* p) { return {_mm256_loadu_pd(p)}; }
  static VF64 set1(double x) { return {_mm256_set1_pd(x)}; }
  static VF64 zero() { return {_mm256_setzero_pd()}; }
  void store(double* p) const { _mm256_storeu_pd(p, v); }
  void stream(double* p) const { _mm256_stream_pd(p, v); }
  static void stream_fence() { _mm_sfence(); }

  friend VF64 operator+(VF64 a, VF64 b) { return {_mm256_add_pd(a.v, b.v)}; }
  friend VF64 operator-(VF64 a, VF64 b) { return {_mm256_sub_pd(a.v, b.v)}; }
  friend VF64 operator*(VF64 a, VF64 b) { return {_mm256_mul_pd(a.v, b.v)}; }
  friend VF64 operator/(VF64 a, VF64 b) { return {_mm256_div_pd(a.v, b.v)}; }
  friend VF64 fma(VF64 a, VF64 b, VF64 c) { return {_mm256_fmadd_pd(a.v, b.v, c.v)}; }
  friend VF64 max_(VF64 a, VF64 b) { return {_mm256_max_pd(a.v, b.v)}; }
  friend VF64 min_(VF64 a, VF64 b) { return {_mm256_min_pd(a.v, b.v)}; }
  friend VF64 clamp_keep_nan(VF64 x, VF64 lo, VF64 hi) {
    return {_mm256_min_pd(hi.v, _mm256_max_pd(lo.v, x.v))};
  }
  friend VF64 bits_xor(VF64 a, VF64 b) { return {_mm256_xor_pd(a.v, b.v)}; }
  friend VF64 abs_(VF64 a) {
    return {_mm256_and_pd(a.v, _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL)))};
  }
  friend Mask eq(VF64 a, VF64 b) { return {_mm256_cmp_pd(a.v, b.v, _CMP_EQ_OQ)}; }
  friend Mask ne(VF64 a, VF64 b) { return {_mm256_cmp_pd(a.v, b.v, _CMP_NEQ_UQ)}; }
  friend Mask lt(VF64 a, VF64 b) { return {_mm256_cmp_pd(a.v, b.v, _CMP_LT_OQ)}; }
  friend Mask le(VF64 a, VF64 b) { return {_mm256_cmp_pd(a.v, b.v, _CMP_LE_OQ)}; }
  friend VF64 select(Mask m, VF64 a, VF64 b) { return {_mm256_blendv_pd(b.v, a.v, m.m)}; }
  friend Mask mask_or(Mask a, Mask b) { return {_mm256_or_pd(a.m, b.m)}; }
  friend bool all_(Mask m) { return _mm256_movemask_pd(m.m) == 0xf; }
  friend VF64 shift_into_exponent(VF64 n) {
    return {_mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(n.v), 52))};
  }
  friend double reduce_max(VF64 a) {
    __m128d t = _mm_max_pd(_mm256_castpd256_pd128(a.v), _mm256_extractf128_pd(a.v, 1));
    return _mm_cvtsd_f64(_mm_max_sd(t, _mm_unpackhi_pd(t, t)));
  }
  friend double reduce_add(VF64 a) {
    const __m128d t = _mm_add_pd(_mm256_castpd256_pd128(a.v), _mm256_extractf128_pd(a.v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
  }
  // See sse2.h: the 1.5 * 2^52 shift trick stands in for a 64-bit integer conversion.
  friend VF64 pow2i(VF64 k) {
    const __m256i t = _mm256_castpd_si256(_mm256_add_pd(k.v, _mm256_set1_pd(0x1.8p52)));
    const __m256i e = _mm256_add_epi64(_mm256_slli_epi64(t, 52), _mm256_set1_epi64x(1023LL << 52));
    return {_mm256_castsi256_pd(e)};
  }
  friend VF64 split_exponent(VF64 x, VF64& e) {
    const __m256i bits = _mm256_castpd_si256(x.v);
    const __m256i biased = _mm256_srli_epi64(bits, 52);
    const __m256d as_double =
        _mm256_castsi256_pd(_mm256_or_si256(biased, _mm256_castpd_si256(_mm256_set1_pd(0x1p52))));
    e.v = _mm256_sub_pd(as_double, _mm256_set1_pd(0x1p52 + 1023.0));
    const __m256i mant = _mm256_and_si256(bits, _mm256_set1_epi64x(0x000fffffffffffffLL));
    return {_mm256_castsi256_pd(_mm256_or_si256(mant, _mm256_set1_epi64x(0x3ff0000000000000LL)))};
  }
};

// The double vector type that goes with VF32 (declared for decltype only).
VF64 double_of(VF32);
// The float lanes of x as two double vectors, and back (rounded to float).
inline void widen_halves(VF32 x, VF64& lo, VF64& hi) {
  lo.v = _mm256_cvtps_pd(_mm256_castps256_ps128(x.v));
  hi.v = _mm256_cvtps_pd(_mm256_extractf128_ps(x.v, 1));
}
inline VF32 narrow_halves(VF64 lo, VF64 hi) {
  return {_mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(lo.v)), _mm256_cvtpd_ps(hi.v), 1)};
}
inline void accumulate_wide(VF64& acc0, VF64& acc1, VF32 x) {
  acc0.v = _mm256_add_pd(acc0.v, _mm256_cvtps_pd(_mm256_castps256_ps128(x.v)));
  acc1.v = _mm256_add_pd(acc1.v, _mm256_cvtps_pd(_mm256_extractf128_ps(x.v, 1)));
}
inline void accumulate_wide(VF64& acc0, VF64& /*acc1*/, VF64 x) {
  acc0.v = _mm256_add_pd(acc0.v, x.v);
}

// transpose(r): r[i] lane j becomes r[j] lane i, for the N x N block in r. With rows a..h:
// pairs of rows are interleaved within each 128-bit half, then pairs of pairs, which leaves
// column j in the low half of s[j] and column j + 4 in its high half, for rows a-d (s[0..3])
// and e-h (s[4..7]); exchanging halves finishes.
inline void transpose(VF32 (&r)[8]) {
  __m256 t[8], s[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i].v, r[i + 1].v);      // a0 b0 a1 b1 | a4 b4 a5 b5
    t[i + 1] = _mm256_unpackhi_ps(r[i].v, r[i + 1].v);  // a2 b2 a3 b3 | a6 b6 a7 b7
  }
  for (int i = 0; i < 8; i += 4) {
    s[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));      // a0 b0 c0 d0 | a4..
    s[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));  // a1 b1 c1 d1 | a5..
    s[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    s[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    r[i].v = _mm256_permute2f128_ps(s[i], s[i + 4], 0x20);
    r[i + 4].v = _mm256_permute2f128_ps(s[i], s[i + 4], 0x31);
  }
}
inline void transpose(VF64 (&r)[4]) {
  const __m256d t0 = _mm256_unpacklo_pd(r[0].v, r[1].v);  // a0 b0 | a2 b2
  const __m256d t1 = _mm256_unpackhi_pd(r[0].v, r[1].v);  // a1 b1 | a3 b3
  const __m256d t2 = _mm256_unpacklo_pd(r[2].v, r[3].v);
  const __m256d t3 = _mm256_unpackhi_pd(r[2].v, r[3].v);
  r[0].v = _mm256_permute2f128_pd(t0, t2, 0x20);
  r[1].v = _mm256_permute2f128_pd(t1, t3, 0x20);
  r[2].v = _mm256_permute2f128_pd(t0, t2, 0x31);
  r[3].v = _mm256_permute2f128_pd(t1, t3, 0x31);
}

}  // namespace logitkit::simd::avx2

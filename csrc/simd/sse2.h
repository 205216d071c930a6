// SSE2: the x86-64 baseline, 4 floats or 2 doubles per vector.
#pragma once
#include <emmintrin.h>

#include <cstdint>

#include "simd/storage.h"

namespace logitkit::simd::sse2 {

struct VF32 {
  using T = float;
  static constexpr int N = 4;
  struct Mask {
    __m128 m;
  };
  __m128 v;

  static VF32 load(const float* p) { return {_mm_loadu_ps(p)}; }
  static VF32 set1(float x) { return {_mm_set1_ps(x)}; }
  static VF32 zero() { return {_mm_setzero_ps()}; }
  void store(float* p) const { _mm_storeu_ps(p, v); }
  // Non-temporal store, bypassing the cache: p must be aligned to the vector size, and
  // stream_fence() must follow the last one before other threads read the data.
  void stream(float* p) const { _mm_stream_ps(p, v); }
  static void stream_fence() { _mm_sfence(); }

  // The 16-bit storage types (see simd/storage.h). SSE2 has no half conversion: half goes
  // through the exact scalar code; bfloat16 widens in registers, as the high half of a float.
  static VF32 load(const half_t* p) {
    return {_mm_setr_ps(widen(p[0]), widen(p[1]), widen(p[2]), widen(p[3]))};
  }
  static VF32 load(const bf16_t* p) {
    const __m128i h = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    return {_mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(), h))};
  }
  template <class S>
  void store(S* p) const {
    alignas(16) float lanes[4];
    _mm_store_ps(lanes, v);
    for (int j = 0; j < 4; ++j) p[j] = narrow<S>(lanes[j]);
  }
  template <class S>
  void stream(S* p) const {
    store(p);
  }

  friend VF32 operator+(VF32 a, VF32 b) { return {_mm_add_ps(a.v, b.v)}; }
  friend VF32 operator-(VF32 a, VF32 b) { return {_mm_sub_ps(a.v, b.v)}; }
  friend VF32 operator*(VF32 a, VF32 b) { return {_mm_mul_ps(a.v, b.v)}; }
  friend VF32 operator/(VF32 a, VF32 b) { return {_mm_div_ps(a.v, b.v)}; }
  friend VF32 fma(VF32 a, VF32 b, VF32 c) { return {_mm_add_ps(_mm_mul_ps(a.v, b.v), c.v)}; }
  friend VF32 max_(VF32 a, VF32 b) { return {_mm_max_ps(a.v, b.v)}; }
  friend VF32 min_(VF32 a, VF32 b) { return {_mm_min_ps(a.v, b.v)}; }
  // maxps/minps return their second operand when either is NaN: keeping x second keeps NaN.
  friend VF32 clamp_keep_nan(VF32 x, VF32 lo, VF32 hi) {
    return {_mm_min_ps(hi.v, _mm_max_ps(lo.v, x.v))};
  }
  friend VF32 bits_xor(VF32 a, VF32 b) { return {_mm_xor_ps(a.v, b.v)}; }
  friend VF32 abs_(VF32 a) {
    return {_mm_and_ps(a.v, _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff)))};
  }
  friend Mask eq(VF32 a, VF32 b) { return {_mm_cmpeq_ps(a.v, b.v)}; }
  friend Mask ne(VF32 a, VF32 b) { return {_mm_cmpneq_ps(a.v, b.v)}; }
  friend Mask lt(VF32 a, VF32 b) { return {_mm_cmplt_ps(a.v, b.v)}; }
  friend Mask le(VF32 a, VF32 b) { return {_mm_cmple_ps(a.v, b.v)}; }
  friend VF32 select(Mask m, VF32 a, VF32 b) {
    return {_mm_or_ps(_mm_and_ps(m.m, a.v), _mm_andnot_ps(m.m, b.v))};
  }
  friend Mask mask_or(Mask a, Mask b) { return {_mm_or_ps(a.m, b.m)}; }
  friend bool all_(Mask m) { return _mm_movemask_ps(m.m) == 0xf; }
  // 2^k from n = round_magic + bias + k (|k| small): the low bits of n moved into the exponent.
  friend VF32 shift_into_exponent(VF32 n) {
    return {_mm_castsi128_ps(_mm_slli_epi32(_mm_castps_si128(n.v), 23))};
  }
  friend float reduce_max(VF32 a) {
    __m128 t = _mm_max_ps(a.v, _mm_movehl_ps(a.v, a.v));
    t = _mm_max_ss(t, _mm_shuffle_ps(t, t, 1));
    return _mm_cvtss_f32(t);
  }
  friend double reduce_add(VF32 a) {
    alignas(16) float lanes[4];
    _mm_store_ps(lanes, a.v);
    return (double(lanes[0]) + double(lanes[1])) + (double(lanes[2]) + double(lanes[3]));
  }
  friend VF32 pow2i(VF32 k) {
    const __m128i e = _mm_add_epi32(_mm_cvtps_epi32(k.v), _mm_set1_epi32(127));
    return {_mm_castsi128_ps(_mm_slli_epi32(e, 23))};
  }
  friend VF32 split_exponent(VF32 x, VF32& e) {
    const __m128i bits = _mm_castps_si128(x.v);
    e.v = _mm_cvtepi32_ps(_mm_sub_epi32(_mm_srli_epi32(bits, 23), _mm_set1_epi32(127)));
    const __m128i mant = _mm_and_si128(bits, _mm_set1_epi32(0x007fffff));
    return {_mm_castsi128_ps(_mm_or_si128(mant, _mm_set1_epi32(0x3f800000)))};
  }
};

struct VF64 {
  using T = double;
  static constexpr int N = 2;
  struct Mask {
    __m128d m;
  };
  __m128d v;

  static VF64 load(const double* p) { return {_mm_loadu_pd(p)}; }
  static VF64 set1(double x) { return {_mm_set1_pd(x)}; }
  static VF64 zero() { return {_mm_setzero_pd()}; }
  void store(double* p) const { _mm_storeu_pd(p, v); }
  void stream(double* p) const { _mm_stream_pd(p, v); }
  static void stream_fence() { _mm_sfence(); }

  friend VF64 operator+(VF64 a, VF64 b) { return {_mm_add_pd(a.v, b.v)}; }
  friend VF64 operator-(VF64 a, VF64 b) { return {_mm_sub_pd(a.v, b.v)}; }
  friend VF64 operator*(VF64 a, VF64 b) { return {_mm_mul_pd(a.v, b.v)}; }
  friend VF64 operator/(VF64 a, VF64 b) { return {_mm_div_pd(a.v, b.v)}; }
  friend VF64 fma(VF64 a, VF64 b, VF64 c) { return {_mm_add_pd(_mm_mul_pd(a.v, b.v), c.v)}; }
  friend VF64 max_(VF64 a, VF64 b) { return {_mm_max_pd(a.v, b.v)}; }
  friend VF64 min_(VF64 a, VF64 b) { return {_mm_min_pd(a.v, b.v)}; }
  friend VF64 clamp_keep_nan(VF64 x, VF64 lo, VF64 hi) {
    return {_mm_min_pd(hi.v, _mm_max_pd(lo.v, x.v))};
  }
  friend VF64 bits_xor(VF64 a, VF64 b) { return {_mm_xor_pd(a.v, b.v)}; }
  friend VF64 abs_(VF64 a) {
    return {_mm_and_pd(a.v, _mm_castsi128_pd(_mm_set1_epi64x(0x7fffffffffffffffLL)))};
  }
  friend Mask eq(VF64 a, VF64 b) { return {_mm_cmpeq_pd(a.v, b.v)}; }
  friend Mask ne(VF64 a, VF64 b) { return {_mm_cmpneq_pd(a.v, b.v)}; }
  friend Mask lt(VF64 a, VF64 b) { return {_mm_cmplt_pd(a.v, b.v)}; }
  friend Mask le(VF64 a, VF64 b) { return {_mm_cmple_pd(a.v, b.v)}; }
  friend VF64 select(Mask m, VF64 a, VF64 b) {
    return {_mm_or_pd(_mm_and_pd(m.m, a.v), _mm_andnot_pd(m.m, b.v))};
  }
  friend Mask mask_or(Mask a, Mask b) { return {_mm_or_pd(a.m, b.m)}; }
  friend bool all_(Mask m) { return _mm_movemask_pd(m.m) == 0x3; }
  friend VF64 shift_into_exponent(VF64 n) {
    return {_mm_castsi128_pd(_mm_slli_epi64(_mm_castpd_si128(n.v), 52))};
  }
  friend double reduce_max(VF64 a) {
    return _mm_cvtsd_f64(_mm_max_sd(a.v, _mm_unpackhi_pd(a.v, a.v)));
  }
  friend double reduce_add(VF64 a) {
    return _mm_cvtsd_f64(_mm_add_sd(a.v, _mm_unpackhi_pd(a.v, a.v)));
  }
  // No 64-bit int conversion before AVX-512: adding 1.5 * 2^52 leaves k in the low mantissa
  // bits, and the shift moves exactly those into the exponent field.
  friend VF64 pow2i(VF64 k) {
    const __m128i t = _mm_castpd_si128(_mm_add_pd(k.v, _mm_set1_pd(0x1.8p52)));
    const __m128i e = _mm_add_epi64(_mm_slli_epi64(t, 52), _mm_set1_epi64x(1023LL << 52));
    return {_mm_castsi128_pd(e)};
  }
  // The biased exponent is OR-ed into the mantissa of 2^52, so subtracting 2^52 + 1023
  // yields it as a double without a 64-bit integer conversion.
  friend VF64 split_exponent(VF64 x, VF64& e) {
    const __m128i bits = _mm_castpd_si128(x.v);
    const __m128i biased = _mm_srli_epi64(bits, 52);
    const __m128d as_double = _mm_castsi128_pd(_mm_or_si128(biased, _mm_castpd_si128(_mm_set1_pd(0x1p52))));
    e.v = _mm_sub_pd(as_double, _mm_set1_pd(0x1p52 + 1023.0));
    const __m128i mant = _mm_and_si128(bits, _mm_set1_epi64x(0x000fffffffffffffLL));
    return {_mm_castsi128_pd(_mm_or_si128(mant, _mm_set1_epi64x(0x3ff0000000000000LL)))};
  }
};

// The double vector type that goes with VF32 (declared for decltype only).
VF64 double_of(VF32);
// The float lanes of x as two double vectors, and back (rounded to float).
inline void widen_halves(VF32 x, VF64& lo, VF64& hi) {
  lo.v = _mm_cvtps_pd(x.v);
  hi.v = _mm_cvtps_pd(_mm_movehl_ps(x.v, x.v));
}
inline VF32 narrow_halves(VF64 lo, VF64 hi) { return {_mm_movelh_ps(_mm_cvtpd_ps(lo.v), _mm_cvtpd_ps(hi.v))}; }
inline void accumulate_wide(VF64& acc0, VF64& acc1, VF32 x) {
  acc0.v = _mm_add_pd(acc0.v, _mm_cvtps_pd(x.v));
  acc1.v = _mm_add_pd(acc1.v, _mm_cvtps_pd(_mm_movehl_ps(x.v, x.v)));
}
inline void accumulate_wide(VF64& acc0, VF64& /*acc1*/, VF64 x) { acc0.v = _mm_add_pd(acc0.v, x.v); }

// transpose(r): r[i] lane j becomes r[j] lane i, for the N x N block in r.
inline void transpose(VF32 (&r)[4]) { _MM_TRANSPOSE4_PS(r[0].v, r[1].v, r[2].v, r[3].v); }
inline void transpose(VF64 (&r)[2]) {
  const __m128d lo = _mm_unpacklo_pd(r[0].v, r[1].v);
  r[1].v = _mm_unpackhi_pd(r[0].v, r[1].v);
  r[0].v = lo;
}

}  // namespace logitkit::simd::sse2

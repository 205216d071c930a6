// AVX-512 (F, BW, DQ, VL): 16 floats or 8 doubles per vector, with mask registers.
//
// The avx512bf16 target compiles these same types once more, in the namespace
// simd::avx512bf16 (see simd/avx512bf16.h, which defines LOGITKIT_SIMD_AVX512_BF16): its
// translation unit has other flags, so not one inline function may be shared with avx512's.
// Only its float to bfloat16 narrowing differs.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "simd/storage.h"

#if defined(LOGITKIT_SIMD_AVX512_BF16)
#if !defined(__AVX512BF16__)
#error "simd/avx512bf16.h needs -mavx512bf16 (the avx512bf16 entry of csrc/isa/isas.cmake)"
#endif
namespace logitkit::simd::avx512bf16 {
#else
namespace logitkit::simd::avx512 {
#endif

struct VF32 {
  using T = float;
  static constexpr int N = 16;
  // transpose() below works in registers, and tails load and store with masks: short rows
  // of fewer than N entries are transposed a vector per row (kernels/columns.h).
  static constexpr bool kTransposesInRegisters = true;
  struct Mask {
    __mmask16 m;
  };
  __m512 v;

  static VF32 load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static VF32 set1(float x) { return {_mm512_set1_ps(x)}; }
  static VF32 zero() { return {_mm512_setzero_ps()}; }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  // Non-temporal store, bypassing the cache: p must be aligned to the vector size, and
  // stream_fence() must follow the last one before other threads read the data.
  void stream(float* p) const { _mm512_stream_ps(p, v); }
  static void stream_fence() { _mm_sfence(); }

  // The 16-bit storage types, converted in registers (see simd/storage.h). bfloat16 is the
  // high half of a float; narrowing rounds the low half away to nearest even, NaN made quiet.
  static VF32 load(const half_t* p) {
    return {_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))};
  }
  static VF32 load(const bf16_t* p) {
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return {_mm512_castsi512_ps(_mm512_slli_epi32(w, 16))};
  }
  __m256i half_bits() const { return _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // The float's bits rounded to the bfloat16 in their high half, to nearest even, in 32-bit
  // lanes; right for every float but NaN.
  static __m512i bf16_rounded(__m512i u) {
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    return _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  }
#if defined(LOGITKIT_SIMD_AVX512_BF16)
  // VCVTNEPS2BF16 rounds to nearest even and makes NaN quiet as (u >> 16) | 0x40, as
  // storage.h does, but reads a subnormal input as zero, whatever MXCSR says (so 0x007fffff
  // gives 0x0000, not 0x0080). Lanes with a subnormal input take the integer rounding
  // instead, and only vectors that have one pay for it.
  __m256i bf16_bits() const {
    const __m256i converted = (__m256i)_mm512_cvtneps_pbh(v);
    // VFPCLASSPS category 0x20: denormal, either sign (one instruction where an and, a
    // subtraction and a compare were)
    const __mmask16 subnormal = _mm512_fpclass_ps_mask(v, 0x20);
    if (subnormal == 0) return converted;
    return _mm512_mask_cvtepi32_epi16(converted, subnormal, bf16_rounded(_mm512_castps_si512(v)));
  }
#else
  __m256i bf16_bits() const {
    const __m512i u = _mm512_castps_si512(v);
    const __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                  _mm512_set1_epi32(0x7f800000));
    const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
    return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, bf16_rounded(u), quiet));
  }
#endif
  void store(half_t* p) const { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), half_bits()); }
  void store(bf16_t* p) const { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), bf16_bits()); }
  void stream(half_t* p) const { _mm256_stream_si256(reinterpret_cast<__m256i*>(p), half_bits()); }
  void stream(bf16_t* p) const { _mm256_stream_si256(reinterpret_cast<__m256i*>(p), bf16_bits()); }

  // A row's tail: lanes [0, count) from p, `fill` in the others (0 <= count <= N). The
  // loads and stores are masked, so nothing past p + count is touched, and no lane goes
  // through memory one at a time as the generic tail in kernels/rows.h does.
  static __mmask16 first(int count) { return static_cast<__mmask16>((1u << count) - 1u); }
  static VF32 load_first(const float* p, int count, float fill) {
    return {_mm512_mask_loadu_ps(_mm512_set1_ps(fill), first(count), p)};
  }
  static VF32 load_first(const half_t* p, int count, float fill) {
    const __m512 v = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(first(count), p));
    return {_mm512_mask_blend_ps(first(count), _mm512_set1_ps(fill), v)};
  }
  static VF32 load_first(const bf16_t* p, int count, float fill) {
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(first(count), p));
    return {_mm512_mask_blend_ps(first(count), _mm512_set1_ps(fill),
                                 _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)))};
  }
  void store_first(float* p, int count) const { _mm512_mask_storeu_ps(p, first(count), v); }
  void store_first(half_t* p, int count) const { _mm256_mask_storeu_epi16(p, first(count), half_bits()); }
  void store_first(bf16_t* p, int count) const { _mm256_mask_storeu_epi16(p, first(count), bf16_bits()); }

  friend VF32 operator+(VF32 a, VF32 b) { return {_mm512_add_ps(a.v, b.v)}; }
  friend VF32 operator-(VF32 a, VF32 b) { return {_mm512_sub_ps(a.v, b.v)}; }
  friend VF32 operator*(VF32 a, VF32 b) { return {_mm512_mul_ps(a.v, b.v)}; }
  friend VF32 operator/(VF32 a, VF32 b) { return {_mm512_div_ps(a.v, b.v)}; }
  friend VF32 fma(VF32 a, VF32 b, VF32 c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
  // fma where `flush` is clear, 0 where it is set; the flushed lanes are not computed, so
  // they cannot cost a subnormal's microcode assist (kernels/math.h: exp_sum_term_).
  friend VF32 fma_unless(Mask flush, VF32 a, VF32 b, VF32 c) {
    return {_mm512_maskz_fmadd_ps(static_cast<__mmask16>(~flush.m), a.v, b.v, c.v)};
  }
  // fma in the lanes of `keep`; the others are 0 and not computed (kernels/math.h).
  friend VF32 fma_keeping(Mask keep, VF32 a, VF32 b, VF32 c) {
    return {_mm512_maskz_fmadd_ps(keep.m, a.v, b.v, c.v)};
  }
  friend VF32 max_(VF32 a, VF32 b) { return {_mm512_max_ps(a.v, b.v)}; }
  friend VF32 min_(VF32 a, VF32 b) { return {_mm512_min_ps(a.v, b.v)}; }
  // vmaxps/vminps return their second operand when either is NaN: keeping x second keeps NaN.
  friend VF32 clamp_keep_nan(VF32 x, VF32 lo, VF32 hi) {
    return {_mm512_min_ps(hi.v, _mm512_max_ps(lo.v, x.v))};
  }
  friend VF32 bits_xor(VF32 a, VF32 b) { return {_mm512_xor_ps(a.v, b.v)}; }
  friend VF32 abs_(VF32 a) { return {_mm512_abs_ps(a.v)}; }
  friend Mask eq(VF32 a, VF32 b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_EQ_OQ)}; }
  friend Mask ne(VF32 a, VF32 b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_NEQ_UQ)}; }
  friend Mask lt(VF32 a, VF32 b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_LT_OQ)}; }
  friend Mask le(VF32 a, VF32 b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_LE_OQ)}; }
  friend VF32 select(Mask m, VF32 a, VF32 b) { return {_mm512_mask_blend_ps(m.m, b.v, a.v)}; }
  friend Mask mask_or(Mask a, Mask b) { return {static_cast<__mmask16>(a.m | b.m)}; }
  friend bool all_(Mask m) { return m.m == 0xffff; }
  // 2^k from n = round_magic + bias + k (|k| small): the low bits of n moved into the exponent.
  friend VF32 shift_into_exponent(VF32 n) {
    return {_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(n.v), 23))};
  }
  friend float reduce_max(VF32 a) {
    __m256 t = _mm256_max_ps(_mm512_castps512_ps256(a.v),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a.v), 1)));
    __m128 u = _mm_max_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
    u = _mm_max_ps(u, _mm_movehl_ps(u, u));
    u = _mm_max_ss(u, _mm_shuffle_ps(u, u, 1));
    return _mm_cvtss_f32(u);
  }
  friend double reduce_add(VF32 a) {
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(a.v));
    const __m512d hi = _mm512_cvtps_pd(
        _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a.v), 1)));
    return _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
  }
  friend VF32 pow2i(VF32 k) {
    const __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(k.v), _mm512_set1_epi32(127));
    return {_mm512_castsi512_ps(_mm512_slli_epi32(e, 23))};
  }
  friend VF32 split_exponent(VF32 x, VF32& e) {
    const __m512i bits = _mm512_castps_si512(x.v);
    e.v = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(bits, 23), _mm512_set1_epi32(127)));
    const __m512i mant = _mm512_and_si512(bits, _mm512_set1_epi32(0x007fffff));
    return {_mm512_castsi512_ps(_mm512_or_si512(mant, _mm512_set1_epi32(0x3f800000)))};
  }
};

struct VF64 {
  using T = double;
  static constexpr int N = 8;
  struct Mask {
    __mmask8 m;
  };
  __m512d v;

  static VF64 load(const double* p) { return {_mm512_loadu_pd(p)}; }
  // A row's tail, as VF32::load_first.
  static __mmask8 first(int count) { return static_cast<__mmask8>((1u << count) - 1u); }
  static VF64 load_first(const double* p, int count, double fill) {
    return {_mm512_mask_loadu_pd(_mm512_set1_pd(fill), first(count), p)};
  }
  void store_first(double* p, int count) const { _mm512_mask_storeu_pd(p, first(count), v); }
  static VF64 set1(double x) { return {_mm512_set1_pd(x)}; }
  static VF64 zero() { return {_mm512_setzero_pd()}; }
  void store(double* p) const { _mm512_storeu_pd(p, v); }
  void stream(double* p) const { _mm512_stream_pd(p, v); }
  static void stream_fence() { _mm_sfence(); }

  friend VF64 operator+(VF64 a, VF64 b) { return {_mm512_add_pd(a.v, b.v)}; }
  friend VF64 operator-(VF64 a, VF64 b) { return {_mm512_sub_pd(a.v, b.v)}; }
  friend VF64 operator*(VF64 a, VF64 b) { return {_mm512_mul_pd(a.v, b.v)}; }
  friend VF64 operator/(VF64 a, VF64 b) { return {_mm512_div_pd(a.v, b.v)}; }
  friend VF64 fma(VF64 a, VF64 b, VF64 c) { return {_mm512_fmadd_pd(a.v, b.v, c.v)}; }
  friend VF64 fma_unless(Mask flush, VF64 a, VF64 b, VF64 c) {
    return {_mm512_maskz_fmadd_pd(static_cast<__mmask8>(~flush.m), a.v, b.v, c.v)};
  }
  friend VF64 fma_keeping(Mask keep, VF64 a, VF64 b, VF64 c) {
    return {_mm512_maskz_fmadd_pd(keep.m, a.v, b.v, c.v)};
  }
  friend VF64 max_(VF64 a, VF64 b) { return {_mm512_max_pd(a.v, b.v)}; }
  friend VF64 min_(VF64 a, VF64 b) { return {_mm512_min_pd(a.v, b.v)}; }
  friend VF64 clamp_keep_nan(VF64 x, VF64 lo, VF64 hi) {
    return {_mm512_min_pd(hi.v, _mm512_max_pd(lo.v, x.v))};
  }
  friend VF64 bits_xor(VF64 a, VF64 b) { return {_mm512_xor_pd(a.v, b.v)}; }
  friend VF64 abs_(VF64 a) { return {_mm512_abs_pd(a.v)}; }
  friend Mask eq(VF64 a, VF64 b) { return {_mm512_cmp_pd_mask(a.v, b.v, _CMP_EQ_OQ)}; }
  friend Mask ne(VF64 a, VF64 b) { return {_mm512_cmp_pd_mask(a.v, b.v, _CMP_NEQ_UQ)}; }
  friend Mask lt(VF64 a, VF64 b) { return {_mm512_cmp_pd_mask(a.v, b.v, _CMP_LT_OQ)}; }
  friend Mask le(VF64 a, VF64 b) { return {_mm512_cmp_pd_mask(a.v, b.v, _CMP_LE_OQ)}; }
  friend VF64 select(Mask m, VF64 a, VF64 b) { return {_mm512_mask_blend_pd(m.m, b.v, a.v)}; }
  friend Mask mask_or(Mask a, Mask b) { return {static_cast<__mmask8>(a.m | b.m)}; }
  friend bool all_(Mask m) { return m.m == 0xff; }
  friend VF64 shift_into_exponent(VF64 n) {
    return {_mm512_castsi512_pd(_mm512_slli_epi64(_mm512_castpd_si512(n.v), 52))};
  }
  friend double reduce_max(VF64 a) { return _mm512_reduce_max_pd(a.v); }
  friend double reduce_add(VF64 a) { return _mm512_reduce_add_pd(a.v); }
  friend VF64 pow2i(VF64 k) {
    const __m512i e = _mm512_add_epi64(_mm512_cvtpd_epi64(k.v), _mm512_set1_epi64(1023));
    return {_mm512_castsi512_pd(_mm512_slli_epi64(e, 52))};
  }
  friend VF64 split_exponent(VF64 x, VF64& e) {
    const __m512i bits = _mm512_castpd_si512(x.v);
    e.v = _mm512_cvtepi64_pd(_mm512_sub_epi64(_mm512_srli_epi64(bits, 52), _mm512_set1_epi64(1023)));
    const __m512i mant = _mm512_and_si512(bits, _mm512_set1_epi64(0x000fffffffffffffLL));
    return {_mm512_castsi512_pd(_mm512_or_si512(mant, _mm512_set1_epi64(0x3ff0000000000000LL)))};
  }
};

// The double vector type that goes with VF32 (declared for decltype only).
VF64 double_of(VF32);
// The float lanes of x as two double vectors, and back (rounded to float).
inline void widen_halves(VF32 x, VF64& lo, VF64& hi) {
  lo.v = _mm512_cvtps_pd(_mm512_castps512_ps256(x.v));
  hi.v = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x.v), 1)));
}
inline VF32 narrow_halves(VF64 lo, VF64 hi) {
  return {_mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo.v)), _mm512_cvtpd_ps(hi.v), 1)};
}
inline void accumulate_wide(VF64& acc0, VF64& acc1, VF32 x) {
  acc0.v = _mm512_add_pd(acc0.v, _mm512_cvtps_pd(_mm512_castps512_ps256(x.v)));
  acc1.v = _mm512_add_pd(
      acc1.v,
      _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x.v), 1))));
}
inline void accumulate_wide(VF64& acc0, VF64& /*acc1*/, VF64 x) {
  acc0.v = _mm512_add_pd(acc0.v, x.v);
}

// transpose(r): r[i] lane j becomes r[j] lane i, for the N x N block in r. The doubles'
// goes through memory: simple enough to be right by inspection.
template <class V>
inline void transpose_in_memory(V (&r)[V::N]) {
  alignas(64) typename V::T block[V::N][V::N];
  for (int i = 0; i < V::N; ++i) r[i].store(block[i]);
  for (int i = 0; i < V::N; ++i) {
    alignas(64) typename V::T column[V::N];
    for (int j = 0; j < V::N; ++j) column[j] = block[j][i];
    r[i] = V::load(column);
  }
}
// The 16 x 16 float block in registers, in four rounds of 16 shuffles: interleave pairs of
// rows, then pairs of pairs (within 128-bit lanes), then exchange 128-bit lanes twice. The
// short-row paths move every entry through it twice; through memory it cost as much as
// their exponentials.
inline void transpose(VF32 (&r)[16]) {
  __m512 t[16], u[16];
  for (int j = 0; j < 8; ++j) {  // t[2j], t[2j+1]: rows 2j and 2j+1 interleaved
    t[2 * j] = _mm512_unpacklo_ps(r[2 * j].v, r[2 * j + 1].v);
    t[2 * j + 1] = _mm512_unpackhi_ps(r[2 * j].v, r[2 * j + 1].v);
  }
  for (int g = 0; g < 4; ++g) {  // u[4g + c], 128-bit lane k: column 4k + c of rows 4g..4g+3
    u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {  // gather lane k of u[c], u[4 + c], u[8 + c], u[12 + c]
    const __m512 even0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);  // lanes 0 and 2
    const __m512 odd0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);   // lanes 1 and 3
    const __m512 even1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
    const __m512 odd1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
    r[c].v = _mm512_shuffle_f32x4(even0, even1, 0x88);
    r[8 + c].v = _mm512_shuffle_f32x4(even0, even1, 0xDD);
    r[4 + c].v = _mm512_shuffle_f32x4(odd0, odd1, 0x88);
    r[12 + c].v = _mm512_shuffle_f32x4(odd0, odd1, 0xDD);
  }
}
inline void transpose(VF64 (&r)[8]) { transpose_in_memory(r); }

}  // namespace logitkit::simd::avx512 (or avx512bf16)

// NEON (AArch64 Advanced SIMD, part of the base architecture): 4 floats or 2 doubles.
#pragma once
#include <arm_neon.h>

#include <cstdint>

#include "simd/storage.h"

namespace logitkit::simd::neon {

struct VF32 {
  using T = float;
  static constexpr int N = 4;
  struct Mask {
    uint32x4_t m;
  };
  float32x4_t v;

  static VF32 load(const float* p) { return {vld1q_f32(p)}; }
  static VF32 set1(float x) { return {vdupq_n_f32(x)}; }
  static VF32 zero() { return {vdupq_n_f32(0.0f)}; }
  void store(float* p) const { vst1q_f32(p, v); }
  // No non-temporal store here: a plain store (see avx2.h).
  void stream(float* p) const { vst1q_f32(p, v); }
  static void stream_fence() {}

  // The 16-bit storage types, converted in registers (see simd/storage.h): half with the
  // conversion instructions; bfloat16 is the high half of a float, narrowed to nearest even
  // with NaN made quiet.
  static VF32 load(const half_t* p) {
    return {vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(p))))};
  }
  static VF32 load(const bf16_t* p) {
    return {vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(reinterpret_cast<const uint16_t*>(p)), 16))};
  }
  void store(half_t* p) const {
    vst1_u16(reinterpret_cast<uint16_t*>(p), vreinterpret_u16_f16(vcvt_f16_f32(v)));
  }
  void store(bf16_t* p) const {
    const uint32x4_t u = vreinterpretq_u32_f32(v);
    const uint32x4_t lsb = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
    const uint32x4_t rounded = vaddq_u32(u, vaddq_u32(lsb, vdupq_n_u32(0x7fff)));
    const uint32x4_t nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffff)), vdupq_n_u32(0x7f800000));
    const uint32x4_t quiet = vorrq_u32(u, vdupq_n_u32(0x400000));
    vst1_u16(reinterpret_cast<uint16_t*>(p), vshrn_n_u32(vbslq_u32(nan, quiet, rounded), 16));
  }
  template <class S>
  void stream(S* p) const {
    store(p);
  }

  friend VF32 operator+(VF32 a, VF32 b) { return {vaddq_f32(a.v, b.v)}; }
  friend VF32 operator-(VF32 a, VF32 b) { return {vsubq_f32(a.v, b.v)}; }
  friend VF32 operator*(VF32 a, VF32 b) { return {vmulq_f32(a.v, b.v)}; }
  friend VF32 operator/(VF32 a, VF32 b) { return {vdivq_f32(a.v, b.v)}; }
  friend VF32 fma(VF32 a, VF32 b, VF32 c) { return {vfmaq_f32(c.v, a.v, b.v)}; }
  friend VF32 max_(VF32 a, VF32 b) { return {vmaxq_f32(a.v, b.v)}; }
  friend VF32 min_(VF32 a, VF32 b) { return {vminq_f32(a.v, b.v)}; }
  // FMAX/FMIN return NaN when either operand is NaN, so NaN survives the clamp.
  friend VF32 clamp_keep_nan(VF32 x, VF32 lo, VF32 hi) {
    return {vminq_f32(hi.v, vmaxq_f32(lo.v, x.v))};
  }
  friend VF32 bits_xor(VF32 a, VF32 b) {
    return {vreinterpretq_f32_u32(veorq_u32(vreinterpretq_u32_f32(a.v), vreinterpretq_u32_f32(b.v)))};
  }
  friend VF32 abs_(VF32 a) { return {vabsq_f32(a.v)}; }
  friend Mask eq(VF32 a, VF32 b) { return {vceqq_f32(a.v, b.v)}; }
  friend Mask ne(VF32 a, VF32 b) { return {vmvnq_u32(vceqq_f32(a.v, b.v))}; }
  friend Mask lt(VF32 a, VF32 b) { return {vcltq_f32(a.v, b.v)}; }
  friend Mask le(VF32 a, VF32 b) { return {vcleq_f32(a.v, b.v)}; }
  friend VF32 select(Mask m, VF32 a, VF32 b) { return {vbslq_f32(m.m, a.v, b.v)}; }
  friend Mask mask_or(Mask a, Mask b) { return {vorrq_u32(a.m, b.m)}; }
  friend bool all_(Mask m) { return vminvq_u32(m.m) != 0; }
  // 2^k from n = round_magic + bias + k (|k| small): the low bits of n moved into the exponent.
  friend VF32 shift_into_exponent(VF32 n) {
    return {vreinterpretq_f32_s32(vshlq_n_s32(vreinterpretq_s32_f32(n.v), 23))};
  }
  friend float reduce_max(VF32 a) { return vmaxvq_f32(a.v); }
  friend double reduce_add(VF32 a) {
    const float64x2_t s = vaddq_f64(vcvt_f64_f32(vget_low_f32(a.v)), vcvt_high_f64_f32(a.v));
    return vaddvq_f64(s);
  }
  friend VF32 pow2i(VF32 k) {
    const int32x4_t e = vaddq_s32(vcvtq_s32_f32(k.v), vdupq_n_s32(127));
    return {vreinterpretq_f32_s32(vshlq_n_s32(e, 23))};
  }
  friend VF32 split_exponent(VF32 x, VF32& e) {
    const uint32x4_t bits = vreinterpretq_u32_f32(x.v);
    const int32x4_t biased = vreinterpretq_s32_u32(vshrq_n_u32(bits, 23));
    e.v = vcvtq_f32_s32(vsubq_s32(biased, vdupq_n_s32(127)));
    const uint32x4_t mant = vandq_u32(bits, vdupq_n_u32(0x007fffffu));
    return {vreinterpretq_f32_u32(vorrq_u32(mant, vdupq_n_u32(0x3f800000u)))};
  }
};

struct VF64 {
  using T = double;
  static constexpr int N = 2;
  struct Mask {
    uint64x2_t m;
  };
  float64x2_t v;

  static VF64 load(const double* p) { return {vld1q_f64(p)}; }
  static VF64 set1(double x) { return {vdupq_n_f64(x)}; }
  static VF64 zero() { return {vdupq_n_f64(0.0)}; }
  void store(double* p) const { vst1q_f64(p, v); }
  void stream(double* p) const { vst1q_f64(p, v); }
  static void stream_fence() {}

  friend VF64 operator+(VF64 a, VF64 b) { return {vaddq_f64(a.v, b.v)}; }
  friend VF64 operator-(VF64 a, VF64 b) { return {vsubq_f64(a.v, b.v)}; }
  friend VF64 operator*(VF64 a, VF64 b) { return {vmulq_f64(a.v, b.v)}; }
  friend VF64 operator/(VF64 a, VF64 b) { return {vdivq_f64(a.v, b.v)}; }
  friend VF64 fma(VF64 a, VF64 b, VF64 c) { return {vfmaq_f64(c.v, a.v, b.v)}; }
  friend VF64 max_(VF64 a, VF64 b) { return {vmaxq_f64(a.v, b.v)}; }
  friend VF64 min_(VF64 a, VF64 b) { return {vminq_f64(a.v, b.v)}; }
  friend VF64 clamp_keep_nan(VF64 x, VF64 lo, VF64 hi) {
    return {vminq_f64(hi.v, vmaxq_f64(lo.v, x.v))};
  }
  friend VF64 bits_xor(VF64 a, VF64 b) {
    return {vreinterpretq_f64_u64(veorq_u64(vreinterpretq_u64_f64(a.v), vreinterpretq_u64_f64(b.v)))};
  }
  friend VF64 abs_(VF64 a) { return {vabsq_f64(a.v)}; }
  friend Mask eq(VF64 a, VF64 b) { return {vceqq_f64(a.v, b.v)}; }
  friend Mask ne(VF64 a, VF64 b) {
    return {vreinterpretq_u64_u32(vmvnq_u32(vreinterpretq_u32_u64(vceqq_f64(a.v, b.v))))};
  }
  friend Mask lt(VF64 a, VF64 b) { return {vcltq_f64(a.v, b.v)}; }
  friend Mask le(VF64 a, VF64 b) { return {vcleq_f64(a.v, b.v)}; }
  friend VF64 select(Mask m, VF64 a, VF64 b) { return {vbslq_f64(m.m, a.v, b.v)}; }
  friend Mask mask_or(Mask a, Mask b) { return {vorrq_u64(a.m, b.m)}; }
  friend bool all_(Mask m) { return (vgetq_lane_u64(m.m, 0) & vgetq_lane_u64(m.m, 1)) != 0; }
  friend VF64 shift_into_exponent(VF64 n) {
    return {vreinterpretq_f64_s64(vshlq_n_s64(vreinterpretq_s64_f64(n.v), 52))};
  }
  friend double reduce_max(VF64 a) { return vmaxvq_f64(a.v); }
  friend double reduce_add(VF64 a) { return vaddvq_f64(a.v); }
  friend VF64 pow2i(VF64 k) {
    const int64x2_t e = vaddq_s64(vcvtq_s64_f64(k.v), vdupq_n_s64(1023));
    return {vreinterpretq_f64_s64(vshlq_n_s64(e, 52))};
  }
  friend VF64 split_exponent(VF64 x, VF64& e) {
    const uint64x2_t bits = vreinterpretq_u64_f64(x.v);
    const int64x2_t biased = vreinterpretq_s64_u64(vshrq_n_u64(bits, 52));
    e.v = vcvtq_f64_s64(vsubq_s64(biased, vdupq_n_s64(1023)));
    const uint64x2_t mant = vandq_u64(bits, vdupq_n_u64(0x000fffffffffffffull));
    return {vreinterpretq_f64_u64(vorrq_u64(mant, vdupq_n_u64(0x3ff0000000000000ull)))};
  }
};

// The double vector type that goes with VF32 (declared for decltype only).
VF64 double_of(VF32);
// The float lanes of x as two double vectors, and back (rounded to float).
inline void widen_halves(VF32 x, VF64& lo, VF64& hi) {
  lo.v = vcvt_f64_f32(vget_low_f32(x.v));
  hi.v = vcvt_high_f64_f32(x.v);
}
inline VF32 narrow_halves(VF64 lo, VF64 hi) { return {vcvt_high_f32_f64(vcvt_f32_f64(lo.v), hi.v)}; }
inline void accumulate_wide(VF64& acc0, VF64& acc1, VF32 x) {
  acc0.v = vaddq_f64(acc0.v, vcvt_f64_f32(vget_low_f32(x.v)));
  acc1.v = vaddq_f64(acc1.v, vcvt_high_f64_f32(x.v));
}
inline void accumulate_wide(VF64& acc0, VF64& /*acc1*/, VF64 x) {
  acc0.v = vaddq_f64(acc0.v, x.v);
}

// transpose(r): r[i] lane j becomes r[j] lane i, for the N x N block in r.
inline void transpose(VF32 (&r)[4]) {
  const float32x4x2_t ab = vtrnq_f32(r[0].v, r[1].v);  // a0 b0 a2 b2, a1 b1 a3 b3
  const float32x4x2_t cd = vtrnq_f32(r[2].v, r[3].v);
  r[0].v = vcombine_f32(vget_low_f32(ab.val[0]), vget_low_f32(cd.val[0]));
  r[1].v = vcombine_f32(vget_low_f32(ab.val[1]), vget_low_f32(cd.val[1]));
  r[2].v = vcombine_f32(vget_high_f32(ab.val[0]), vget_high_f32(cd.val[0]));
  r[3].v = vcombine_f32(vget_high_f32(ab.val[1]), vget_high_f32(cd.val[1]));
}
inline void transpose(VF64 (&r)[2]) {
  const float64x2_t lo = vzip1q_f64(r[0].v, r[1].v);
  r[1].v = vzip2q_f64(r[0].v, r[1].v);
  r[0].v = lo;
}

}  // namespace logitkit::simd::neon

// Scalar "vectors" of one lane: the portable baseline every other ISA is tested against.
// The interface below is the contract each simd/*.h implements for its two vector types.
#pragma once
#include <cstdint>
#include <cstring>

#include "simd/storage.h"

namespace logitkit::simd::scalar {

template <class To, class From>
inline To bit_cast(From from) {
  static_assert(sizeof(To) == sizeof(From));
  To to;
  std::memcpy(&to, &from, sizeof(To));
  return to;
}

template <class TT, class UInt, int kMantBits, int kBias>
struct Vec1 {
  using T = TT;
  static constexpr int N = 1;
  struct Mask {
    bool b;
  };
  T v;

  static Vec1 load(const T* p) { return {*p}; }
  static Vec1 set1(T x) { return {x}; }
  static Vec1 zero() { return {T(0)}; }
  void store(T* p) const { *p = v; }
  // No non-temporal store here: a plain store (see avx2.h).
  void stream(T* p) const { *p = v; }
  static void stream_fence() {}
  // The 16-bit storage types, with the exact scalar code of simd/storage.h.
  static Vec1 load(const half_t* p) { return {T(widen(*p))}; }
  static Vec1 load(const bf16_t* p) { return {T(widen(*p))}; }
  void store(half_t* p) const { *p = narrow<half_t>(float(v)); }
  void store(bf16_t* p) const { *p = narrow<bf16_t>(float(v)); }
  void stream(half_t* p) const { store(p); }
  void stream(bf16_t* p) const { store(p); }

  friend Vec1 operator+(Vec1 a, Vec1 b) { return {a.v + b.v}; }
  friend Vec1 operator-(Vec1 a, Vec1 b) { return {a.v - b.v}; }
  friend Vec1 operator*(Vec1 a, Vec1 b) { return {a.v * b.v}; }
  friend Vec1 operator/(Vec1 a, Vec1 b) { return {a.v / b.v}; }
  // Separate multiply and add: the scalar baseline has no guaranteed FMA unit, and a
  // software fma would be far slower than the rounding difference is worth.
  friend Vec1 fma(Vec1 a, Vec1 b, Vec1 c) { return {a.v * b.v + c.v}; }
  friend Vec1 max_(Vec1 a, Vec1 b) { return {a.v > b.v ? a.v : b.v}; }
  friend Vec1 min_(Vec1 a, Vec1 b) { return {a.v < b.v ? a.v : b.v}; }
  // Comparisons with NaN are false, so NaN falls through both tests unchanged.
  friend Vec1 clamp_keep_nan(Vec1 x, Vec1 lo, Vec1 hi) {
    return {x.v < lo.v ? lo.v : (x.v > hi.v ? hi.v : x.v)};
  }
  friend Vec1 bits_xor(Vec1 a, Vec1 b) {
    return {bit_cast<T>(bit_cast<UInt>(a.v) ^ bit_cast<UInt>(b.v))};
  }
  friend Vec1 abs_(Vec1 a) {
    return {bit_cast<T>(bit_cast<UInt>(a.v) & ~(UInt(1) << (sizeof(T) * 8 - 1)))};
  }
  friend Mask eq(Vec1 a, Vec1 b) { return {a.v == b.v}; }
  friend Mask ne(Vec1 a, Vec1 b) { return {a.v != b.v}; }
  friend Mask lt(Vec1 a, Vec1 b) { return {a.v < b.v}; }
  friend Mask le(Vec1 a, Vec1 b) { return {a.v <= b.v}; }
  friend Vec1 select(Mask m, Vec1 a, Vec1 b) { return m.b ? a : b; }
  friend Mask mask_or(Mask a, Mask b) { return {a.b || b.b}; }
  friend bool all_(Mask m) { return m.b; }
  // 2^k from n = round_magic + bias + k (|k| small): the low bits of n moved into the exponent.
  friend Vec1 shift_into_exponent(Vec1 n) {
    return {bit_cast<T>(static_cast<UInt>(bit_cast<UInt>(n.v) << kMantBits))};
  }
  friend T reduce_max(Vec1 a) { return a.v; }
  friend double reduce_add(Vec1 a) { return double(a.v); }

  // 2^k for an integral-valued k inside the normal exponent range.
  friend Vec1 pow2i(Vec1 k) {
    const auto e = static_cast<int64_t>(k.v) + kBias;
    return {bit_cast<T>(static_cast<UInt>(e) << kMantBits)};
  }
  // x = m * 2^e with m in [1, 2), for positive normal x.
  friend Vec1 split_exponent(Vec1 x, Vec1& e) {
    const UInt bits = bit_cast<UInt>(x.v);
    e.v = T(static_cast<int64_t>(bits >> kMantBits) - kBias);
    const UInt mant = bits & ((UInt(1) << kMantBits) - 1);
    return {bit_cast<T>(mant | (UInt(kBias) << kMantBits))};
  }
};

using VF32 = Vec1<float, uint32_t, 23, 127>;
using VF64 = Vec1<double, uint64_t, 52, 1023>;

// The double vector type that goes with VF32 (declared for decltype only).
VF64 double_of(VF32);
// The float lane of x as a double (hi is not used: one lane), and back (rounded to float).
inline void widen_halves(VF32 x, VF64& lo, VF64& /*hi*/) { lo.v = double(x.v); }
inline VF32 narrow_halves(VF64 lo, VF64 /*hi*/) { return {static_cast<float>(lo.v)}; }
// Sums of float lanes are carried in double so that long rows lose no precision.
inline void accumulate_wide(VF64& acc0, VF64& /*acc1*/, VF32 x) { acc0.v += double(x.v); }
inline void accumulate_wide(VF64& acc0, VF64& /*acc1*/, VF64 x) { acc0.v += x.v; }

// transpose(r): r[i] lane j becomes r[j] lane i, for the N x N block in r (see avx2.h).
// One lane: nothing moves.
inline void transpose(VF32 (&)[1]) {}
inline void transpose(VF64 (&)[1]) {}

}  // namespace logitkit::simd::scalar

// Vector exp and log built from the simd/ primitives. Included inside an ISA-specific
// namespace (LOGITKIT_ISA_NS) so that each instruction set gets its own copy.
#pragma once
#include <cstdint>
#include <limits>

// The compilers leave exp_, log_ and their kin out of line in the kernels' hot loops (they
// judge them too large), which costs a call and spills every live vector register around
// it: softmax rows took 15% longer, sigmoid 30% (`python -m logitkit bench --ops
// softmax,sigmoid --shapes 512x32000`, with and without the attribute). The elementwise
// functions are forced inline; exp's rare full-range path is kept out of line and cold.
#if defined(__GNUC__) || defined(__clang__)
#define LOGITKIT_ALWAYS_INLINE inline __attribute__((always_inline))
#define LOGITKIT_COLD __attribute__((noinline, cold))
#else
#define LOGITKIT_ALWAYS_INLINE inline
#define LOGITKIT_COLD
#endif

namespace logitkit::LOGITKIT_ISA_NS {

template <class T>
struct MathConsts;

template <>
struct MathConsts<float> {
  // exp(x) underflows to 0 below about -103.97 and overflows above about 88.72; the clamp
  // keeps the exponent arithmetic in range while preserving both limits.
  static constexpr float exp_lo = -104.0f;
  static constexpr float exp_hi = 89.0f;
  static constexpr float log2e = 0x1.715476p+0f;
  // ln 2 split so that k * ln2_hi is exact for every k the clamp allows (Cody-Waite).
  static constexpr float ln2_hi = 0x1.62ep-1f;
  static constexpr float ln2_lo = 0x1.0bfbe8p-15f;
  static constexpr float round_magic = 0x1.8p23f;
  static constexpr float exponent_bias = 127.0f;
  // Below this |x|, exp(x) and 2^round(x log2 e) are normal numbers: the fast path applies.
  static constexpr float normal_range = 87.0f;
  static constexpr float min_normal = 0x1p-126f;
  static constexpr float subnormal_scale = 0x1p25f;
  static constexpr float subnormal_shift = 25.0f;
  // The subnormals are the integers below 2^23 in units of 2^-149, and their bits are those
  // integers.
  static constexpr float subnormal_grid_exponent = 149.0f;
  static constexpr float subnormal_bits = 23.0f;
  static constexpr float subnormal_units = 0x1p23f;
};

template <>
struct MathConsts<double> {
  static constexpr double exp_lo = -746.0;
  static constexpr double exp_hi = 710.0;
  static constexpr double log2e = 0x1.71547652b82fep+0;
  static constexpr double ln2_hi = 0x1.62e42ffp-1;
  static constexpr double ln2_lo = -0x1.718432a1b0e26p-35;
  static constexpr double round_magic = 0x1.8p52;
  static constexpr double exponent_bias = 1023.0;
  static constexpr double normal_range = 708.0;
  static constexpr double min_normal = 0x1p-1022;
  static constexpr double subnormal_scale = 0x1p54;
  static constexpr double subnormal_shift = 54.0;
  static constexpr double subnormal_grid_exponent = 1074.0;
  static constexpr double subnormal_bits = 52.0;
  static constexpr double subnormal_units = 0x1p52;
};

template <class V>
inline V splat(double c) {
  return V::set1(static_cast<typename V::T>(c));
}

// exp(r) - 1 - r for |r| <= ln2/2, divided by r^2 and evaluated by Horner's rule.
// float: degree-4 fit for minimal relative error of the whole exp (about 3e-9, far below
// float rounding), computed by iteratively reweighted least squares on [-ln2/2, ln2/2].
// double: Taylor terms to r^13, whose truncation error (< 5e-18) is below double rounding.
template <class V>
LOGITKIT_ALWAYS_INLINE V exp_poly_tail(V r, float) {
  // Estrin's scheme: (c0 + c1 r) + r^2 ((c2 + c3 r) + r^2 c4), a shorter chain than Horner's
  const V r2 = r * r;
  const V lo = fma(splat<V>(0.1666652068865668), r, splat<V>(0.4999999345162602));
  const V hi = fma(splat<V>(0.008368709961356245), r, splat<V>(0.041668387373896165));
  return fma(fma(splat<V>(0.0013814613093567837), r2, hi), r2, lo);
}

constexpr double inverse_factorial(int k) {
  double f = 1.0;
  for (int i = 2; i <= k; ++i) f *= i;
  return 1.0 / f;
}

// r^k / (k + 2)! + r^(k+1) / (k + 3)!, the coefficients folded at compile time. A template
// rather than a lambda: GCC left such a lambda out of line in the float64 unary loops (a
// call per pair, the polynomial spilled to the stack), which made float64 exp 6.0 ns per
// entry against 0.37 in float32 on an AMD EPYC (a script timing _core.unary(OP_EXP) on
// 65536 doubles, 1 thread).
template <int K, class V>
LOGITKIT_ALWAYS_INLINE V taylor_pair(V r) {
  constexpr double low = inverse_factorial(K + 2), high = inverse_factorial(K + 3);
  return fma(splat<V>(high), r, splat<V>(low));
}

template <class V>
LOGITKIT_ALWAYS_INLINE V exp_poly_tail(V r, double) {
  // sum of r^k / (k + 2)! for k < 12, by Estrin's scheme: pairs c_k + c_(k+1) r, joined by
  // r^2 into fours and by r^4 into the whole; a third of Horner's dependency chain
  const V r2 = r * r, r4 = r2 * r2;
  const V terms0 = fma(taylor_pair<2>(r), r2, taylor_pair<0>(r));
  const V terms4 = fma(taylor_pair<6>(r), r2, taylor_pair<4>(r));
  const V terms8 = fma(taylor_pair<10>(r), r2, taylor_pair<8>(r));
  return fma(fma(terms8, r4, terms4), r4, terms0);
}

// exp(x) for |x| < normal_range, where x = k ln2 + r has a normal 2^k and a normal result.
// Rounding x log2 e with the biased magic constant leaves k + bias in the low bits, which one
// integer shift turns into 2^k, and 2^k (1 + expm1(r)) is a single fma: a third of the
// floating-point work of the full-range form below. The parts are 2^k and exp(r) - 1, for
// callers that take the final fma themselves.
template <class V>
LOGITKIT_ALWAYS_INLINE void exp_normal_range_parts(V x, V& scale, V& expm1_r) {
  using T = typename V::T;
  using C = MathConsts<T>;
  const V magic = V::set1(C::round_magic + C::exponent_bias);
  V n = fma(x, V::set1(C::log2e), magic);
  scale = shift_into_exponent(n);
  n = n - magic;
  V r = fma(n, V::set1(-C::ln2_hi), x);
  r = fma(n, V::set1(-C::ln2_lo), r);
  expm1_r = fma(exp_poly_tail(r, T()), r * r, r);
}

template <class V>
LOGITKIT_ALWAYS_INLINE V exp_normal_range(V x) {
  V scale, expm1_r;
  exp_normal_range_parts(x, scale, expm1_r);
  return fma(scale, expm1_r, scale);
}

// fma(a, b, c) where `flush` is clear and 0 where it is set. ISAs with zero-masking have
// their own, which does not compute the flushed lanes (and is preferred as a non-template).
template <class V, class Mask>
LOGITKIT_ALWAYS_INLINE V fma_unless(Mask flush, V a, V b, V c) {
  return select(flush, V::zero(), fma(a, b, c));
}

// fma(a, b, c) in the lanes of `keep`, for a caller that discards the other lanes: ISAs with
// zero-masking do not compute them (so a lane cannot cost a subnormal's assist there); the
// others compute them all, at no extra instruction.
template <class V, class Mask>
LOGITKIT_ALWAYS_INLINE V fma_keeping(Mask, V a, V b, V c) {
  return fma(a, b, c);
}

// exp(x) over the whole range, with correct overflow to +inf, gradual underflow through the
// subnormals, and NaN propagation. x = k ln2 + r, exp(x) = 2^k exp(r); 2^k is applied in two
// halves so that the results near the overflow threshold stay representable.
//
// A subnormal result is rounded without a floating-point operation that has a subnormal
// result: on Intel cores each such operation costs a microcode assist of over a hundred
// cycles. On logits of spread 20 (512x32000 float32, 2 threads, where a fifth of the
// exponentials are subnormal) the KL divergence took 92 ms with the product below and 49 ms
// without it (a script timing lk.kl_divergence_from_logits on rng.standard_normal * 20).
// The result is p 2^(k + 149) (float; 2^(k + 1074) in double) rounded to an integer: a
// normal number in units of the subnormal grid. Adding 2^23 (2^52) rounds it as the product
// p 2^k would be rounded, to nearest with ties to even, and leaves the integer in the low
// bits, which are the subnormal's bits once those of 2^23 are cleared: the same bits as the
// product, so no result changes.
template <class V>
LOGITKIT_COLD V exp_full_range(V x) {
  using T = typename V::T;
  using C = MathConsts<T>;
  x = clamp_keep_nan(x, V::set1(C::exp_lo), V::set1(C::exp_hi));
  const V magic = V::set1(C::round_magic);
  const V k = fma(x, V::set1(C::log2e), magic) - magic;  // round to nearest integer
  V r = fma(k, V::set1(-C::ln2_hi), x);
  r = fma(k, V::set1(-C::ln2_lo), r);
  const V p = fma(exp_poly_tail(r, T()), r * r, r) + V::set1(T(1));
  const V units = V::set1(C::subnormal_units);
  // Capped so that 2^k stays a valid float for every lane; a capped lane is >= units anyway.
  const V in_units =
      p * pow2i(min_(k + V::set1(C::subnormal_grid_exponent), V::set1(C::subnormal_bits + 1)));
  const auto tiny = lt(in_units, units);
  const V k_normal = select(tiny, V::zero(), k);
  const V k1 = fma(k_normal, V::set1(T(0.5)), magic) - magic;
  const V k2 = k_normal - k1;
  return select(tiny, bits_xor(in_units + units, units), p * pow2i(k1) * pow2i(k2));
}

// exp(x), given which lanes are well inside the range (|x| < normal_range): vectors whose
// lanes all are (nearly all of them) need only the fast path. Lanes inside it always take the
// fast path's value, so that a result does not depend on which neighbours share its vector
// (alignment, row tails).
// The fast path runs on 0 in the other lanes: on their own x it can round to a subnormal,
// with the assist described above.
template <class V, class Mask>
LOGITKIT_ALWAYS_INLINE V exp_in_range(V x, Mask in_range) {
  if (all_(in_range)) return exp_normal_range(x);
  return select(in_range, exp_normal_range(select(in_range, x, V::zero())), exp_full_range(x));
}

template <class V>
LOGITKIT_ALWAYS_INLINE V exp_(V x) {
  using T = typename V::T;
  return exp_in_range(x, lt(abs_(x), V::set1(MathConsts<T>::normal_range)));
}

// exp(-|x|), in (0, 1], as exp_ computes it: the range test needs no second absolute value,
// since -|x| > -normal_range is |x| < normal_range (sigmoid's family calls it once per entry).
template <class V>
LOGITKIT_ALWAYS_INLINE V exp_neg_abs_(V x) {
  using T = typename V::T;
  const V z = V::zero() - abs_(x);
  return exp_in_range(z, lt(V::set1(-MathConsts<T>::normal_range), z));
}

// exp(x) for x <= 0 as a term of a sum: results below exp(-normal_range) flush to 0 (they
// cannot change a sum that holds exp(0) = 1), so every lane takes the fast path; what it
// computes for the flushed lanes (-inf among them) is discarded. NaN stays NaN.
//
// The final fma of those from 87.34 to 87.68 below the max (float) rounds to a subnormal,
// which costs a microcode assist on Intel cores: over entries in that band logsumexp took
// 10x longer (512x32000 float32, 2 threads). With zero-masking (AVX-512) the flushed lanes
// are not computed at all, at no cost; elsewhere the band keeps its assists, as clamping x
// first took one more instruction per vector, 4-9% of logsumexp on ordinary logits.
template <class V>
LOGITKIT_ALWAYS_INLINE V exp_sum_term_(V x) {
  using T = typename V::T;
  V scale, expm1_r;
  exp_normal_range_parts(x, scale, expm1_r);
  return fma_unless(lt(x, V::set1(-MathConsts<T>::normal_range)), scale, expm1_r, scale);
}

// exp(x) - 1 without cancellation near 0: for |x| <= ln2/2 the reduced argument is x itself
// (k = 0) and the polynomial gives exp(x) - 1 - x directly; farther out exp(x) - 1 loses
// nothing.
template <class V>
LOGITKIT_ALWAYS_INLINE V expm1_(V x) {
  using T = typename V::T;
  const V near_zero = fma(exp_poly_tail(x, T()), x * x, x);
  const auto small = lt(abs_(x), splat<V>(0.34657359027997264));
  return select(small, near_zero, exp_(x) - V::set1(T(1)));
}

// tanh(u) = -expm1(-2|u|) / (2 + expm1(-2|u|)), with the sign of u restored; exact limits
// +-1 at +-inf, NaN propagates.
template <class V>
LOGITKIT_ALWAYS_INLINE V tanh_(V u) {
  using T = typename V::T;
  const V em = expm1_(V::set1(T(-2)) * abs_(u));
  const V t = (V::zero() - em) / (V::set1(T(2)) + em);
  return select(lt(u, V::zero()), V::zero() - t, t);
}

// 2 atanh(s) - 2s over s^3, for |s| <= (sqrt2 - 1)/(sqrt2 + 1): the odd series of
// log((1 + s)/(1 - s)), with coefficients 2/(2j + 1), cut where it falls below rounding.
template <class V>
LOGITKIT_ALWAYS_INLINE V atanh_series_tail(V s2, float) {
  V q = splat<V>(2.0 / 11);
  for (int j = 4; j >= 1; --j) q = fma(q, s2, splat<V>(2.0 / (2 * j + 1)));
  return q * s2;
}

template <class V>
LOGITKIT_ALWAYS_INLINE V atanh_series_tail(V s2, double) {
  V q = splat<V>(2.0 / 23);
  for (int j = 10; j >= 1; --j) q = fma(q, s2, splat<V>(2.0 / (2 * j + 1)));
  return q * s2;
}

// log(1 + f) for f in [sqrt(1/2) - 1, sqrt(2) - 1], via s = f / (2 + f).
template <class V>
LOGITKIT_ALWAYS_INLINE V log1p_reduced(V f) {
  using T = typename V::T;
  const V s = f / (V::set1(T(2)) + f);
  return fma(s, atanh_series_tail(s * s, T()), s + s);
}

template <class V>
LOGITKIT_ALWAYS_INLINE V log_(V x) {
  using T = typename V::T;
  using C = MathConsts<T>;
  const V zero = V::zero();
  const auto tiny = lt(x, V::set1(C::min_normal));
  const V xs = select(tiny, x * V::set1(C::subnormal_scale), x);
  V e;
  V m = split_exponent(xs, e);
  e = e - select(tiny, V::set1(C::subnormal_shift), zero);
  const auto high = lt(splat<V>(1.4142135623730951), m);
  m = select(high, m * V::set1(T(0.5)), m);
  e = select(high, e + V::set1(T(1)), e);
  const V logm = log1p_reduced(m - V::set1(T(1)));
  V result = fma(e, V::set1(C::ln2_hi), fma(e, V::set1(C::ln2_lo), logm));
  constexpr T inf = std::numeric_limits<T>::infinity();
  result = select(eq(x, zero), V::set1(-inf), result);
  result = select(eq(x, V::set1(inf)), V::set1(inf), result);
  const auto invalid = mask_or(lt(x, zero), ne(x, x));
  return select(invalid, V::set1(std::numeric_limits<T>::quiet_NaN()), result);
}

// log(1 + x) for x in [0, 1], the range log-sigmoid and softplus need; one division.
template <class V>
LOGITKIT_ALWAYS_INLINE V log1p_unit_(V x) {
  using T = typename V::T;
  const auto high = lt(splat<V>(0.41421356237309503), x);
  // 1 + x = 2 (1 + (x - 1)/2), and x - 1 is exact for x in [1/2, 1].
  const V f = select(high, (x - V::set1(T(1))) * V::set1(T(0.5)), x);
  const V l = log1p_reduced(f);
  return select(high, l + splat<V>(0.6931471805599453), l);
}

// log(1 + x) for moderate x: the rounding of u = 1 + x is undone by a first-order term.
template <class V>
LOGITKIT_ALWAYS_INLINE V log1p_(V x) {
  using T = typename V::T;
  const V one = V::set1(T(1));
  const V u = one + x;
  return log_(u) + (x - (u - one)) / u;
}

}  // namespace logitkit::LOGITKIT_ISA_NS

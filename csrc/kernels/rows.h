// Row primitives over one contiguous row, written once over the simd/ vector types and
// compiled per ISA inside LOGITKIT_ISA_NS. No threads, no Python and no allocation: scratch
// comes from the caller's Workspace (table.h).
//
// Operands that are read or written whole are of a storage type S: float or double, or a
// 16-bit format (half_t, bf16_t) that the vector loads and stores convert in registers; the
// arithmetic is in V::T = compute_t<S> (simd/storage.h). With S = V::T the code is the plain
// float or double kernel.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <type_traits>

#include "combine.h"
#include "math.h"
#include "simd/storage.h"
#include "special.h"
#include "table.h"

namespace logitkit::LOGITKIT_ISA_NS {

using std::ptrdiff_t;

// Streaming loops ask for their input kPrefetchAhead bytes (a page) ahead of where they read,
// in steps of whole vectors covering at least one 64-byte line (the one-read statistics, a
// block at a time). On the Xeon measured (a VM) the hardware prefetchers barely ran ahead of
// such loops: sigmoid over 512x32000 (2 threads, out=) went from 0.28 to 0.22 ns per entry
// in float32, 0.32 to 0.15 in float16 and 0.35 to 0.19 in bfloat16 with it, and by 2.3x to
// 3.5x on the AVX2 table; distances of 1 to 8 KiB measured alike, rows in cache unchanged
// (`python -m logitkit bench --ops sigmoid`, and a script timing lk.sigmoid on 8 and 512 rows
// of 32000 with and without the prefetch). In the one-read statistics, float32, 2 threads,
// out=, medians of 9 calls: softmax 6.37 -> 4.58 ms on 512x32000 and 1.07 -> 0.88 ms on
// 4096x1000, logsumexp 2.88 -> 2.30 ms and the cross-entropy 2.93 -> 2.46 ms on 512x32000
// (`python -m logitkit bench --ops softmax,logsumexp,cross_entropy --modes out --threads 2
// --repeat 9`).
constexpr ptrdiff_t kPrefetchAhead = 4096;

template <class V, class S>
constexpr ptrdiff_t prefetch_step() {
  constexpr ptrdiff_t bytes = V::N * static_cast<ptrdiff_t>(sizeof(S));
  return bytes >= 64 ? V::N : V::N * (64 / bytes);
}

// Asks for the step of p (prefetch_step<V, S>() entries) that lies kPrefetchAhead bytes past
// p + i. The address may be past the end of p's array: a prefetch never faults.
template <class V, class S>
inline void prefetch_step_ahead(const S* p, ptrdiff_t i) {
  constexpr ptrdiff_t ahead = kPrefetchAhead / static_cast<ptrdiff_t>(sizeof(S));
  prefetch_lines(p + i + ahead, prefetch_step<V, S>() * static_cast<ptrdiff_t>(sizeof(S)));
}

// Whether V loads and stores a tail of S with masks (V::load_first, V::store_first).
template <class V, class S, class = void>
struct has_masked_tail : std::false_type {};
template <class V, class S>
struct has_masked_tail<V, S,
                       std::void_t<decltype(V::load_first(static_cast<const S*>(nullptr), 0,
                                                          typename V::T()))>>
    : std::true_type {};

// Tails shorter than a vector are padded with a neutral value, so every element is processed
// by the same vector code as the body: with masked loads and stores where the vector type has
// them (AVX-512), else through a small buffer.
template <class V, class S>
inline V load_partial(const S* p, ptrdiff_t n, typename V::T fill) {
  if constexpr (has_masked_tail<V, S>::value) {
    return V::load_first(p, static_cast<int>(n), fill);
  } else {
    alignas(64) typename V::T buf[V::N];
    for (int j = 0; j < V::N; ++j) buf[j] = j < n ? widen(p[j]) : fill;
    return V::load(buf);
  }
}

template <class V, class S>
inline void store_partial(S* p, ptrdiff_t n, V v) {
  if constexpr (has_masked_tail<V, S>::value) {
    v.store_first(p, static_cast<int>(n));
  } else {
    alignas(64) typename V::T buf[V::N];
    v.store(buf);
    for (ptrdiff_t j = 0; j < n; ++j) p[j] = narrow<S>(buf[j]);
  }
}

// The entries of a row equal to its max, counted per lane with one vector add each and moved
// into a double every kFlush vectors: a float lane stops counting at 2^24, and a row may hold
// more ties than that (entropy_from_logits of 3 * 2^23 ones, say).
template <class V>
struct TieCount {
  static constexpr ptrdiff_t kFlush = ptrdiff_t(1) << 20;
  V lanes = V::zero();
  double flushed = 0;
  ptrdiff_t pending = 0;

  void add(typename V::Mask at_max) {
    lanes = lanes + select(at_max, V::set1(typename V::T(1)), V::zero());
    if (++pending == kFlush) {
      flushed += reduce_add(lanes);
      lanes = V::zero();
      pending = 0;
    }
  }
  double total() const { return flushed + reduce_add(lanes); }
};

// `count` values of U from the front of the workspace, 64-byte aligned. Running out is a
// defect in scratch_bytes (table.h), which stops the process rather than write past the end.
template <class U>
U* take_scratch(Workspace& ws, ptrdiff_t count) {
  const auto base = reinterpret_cast<std::uintptr_t>(ws.next);
  unsigned char* p = ws.next + (64 - base % 64) % 64;
  const auto bytes = static_cast<std::size_t>(count) * sizeof(U);
  if (p > ws.end || bytes > static_cast<std::size_t>(ws.end - p)) std::abort();
  ws.next = p + bytes;
  return reinterpret_cast<U*>(p);
}

// Lanes [0, count) of p: a full load when count == N (the body of a row), padded otherwise.
template <class V, class S>
inline V load_n(const S* p, ptrdiff_t count, typename V::T fill) {
  return count == V::N ? V::load(p) : load_partial<V>(p, count, fill);
}

// Lanes [0, count) of v into p: load_n's counterpart.
template <class V, class S>
inline void store_n(S* p, ptrdiff_t count, V v) {
  if (count == V::N) {
    v.store(p);
  } else {
    store_partial(p, count, v);
  }
}

// Writes y[i, i + count) = value(i, count) for every vector of the row. With `stream` the
// aligned full vectors bypass the cache: an output too large to stay cached then costs one
// write to memory, instead of a read for ownership of every line plus its write-back.
// `fence` = false leaves the stream_fence() to the caller (one per row, not per piece).
template <class V, class S, class Value>
inline void write_row(S* y, ptrdiff_t n, bool stream, Value&& value, bool fence = true) {
  constexpr auto kAlign = static_cast<std::uintptr_t>(V::N * sizeof(S));
  const auto addr = reinterpret_cast<std::uintptr_t>(y);
  ptrdiff_t i = 0;
  if (stream && V::N > 1 && addr % sizeof(S) == 0) {
    const auto head = std::min<ptrdiff_t>(
        n, static_cast<ptrdiff_t>(((kAlign - addr % kAlign) % kAlign) / sizeof(S)));
    if (head > 0) store_partial(y, head, value(ptrdiff_t(0), head));
    for (i = head; i + V::N <= n; i += V::N) value(i, ptrdiff_t(V::N)).stream(y + i);
    if (fence) V::stream_fence();
  } else {
    for (; i + V::N <= n; i += V::N) value(i, ptrdiff_t(V::N)).store(y + i);
  }
  if (i < n) store_partial(y + i, n - i, value(i, n - i));
}

// Lanes [0, count) of a vector: the part of a padded tail that belongs to the row.
template <class V>
inline typename V::Mask tail_mask(ptrdiff_t count) {
  using T = typename V::T;
  alignas(64) T lanes[V::N];
  for (int j = 0; j < V::N; ++j) lanes[j] = T(j);
  return lt(V::load(lanes), V::set1(T(count)));
}

// Sum of vectors carried in double lanes (float lanes are widened on the way in).
template <class VD>
struct WideSum {
  VD a0 = VD::zero(), a1 = VD::zero();
  template <class V>
  void add(V x) {
    accumulate_wide(a0, a1, x);
  }
  double total() const { return reduce_add(a0 + a1); }
};

// x * f rounded as the float product x * float(f) is, for float lanes and f a float held in
// a double: the product of two floats is exact in double, and the conversions take and give
// subnormals without the microcode assist that a multiply with a subnormal input or result
// costs on Intel cores.
template <class V>
V scale_in_double(V x, double f) {
  using VD = decltype(double_of(x));
  constexpr bool kTwoHalves = 2 * VD::N == V::N;
  VD lo, hi = VD::zero();
  widen_halves(x, lo, hi);
  const VD s = VD::set1(f);
  return narrow_halves(lo * s, kTwoHalves ? hi * s : lo * s);
}

// fma(e, err, e) for float lanes, rounded as the float fma would round it, without a
// multiply whose input or result is subnormal (each costs a microcode assist on Intel cores;
// the conversions between float and double do not). In units of 2^-149 a subnormal e is an
// integer u below 2^23 and the result is u + t, t = u err (exact in double), rounded to an
// integer: the float grid there. t is rounded to nearest, a tie going to the even one of
// u + t's two neighbours, as the fma rounds. (Adding 1.5 2^52 rounds a t of either sign.)
template <class V>
LOGITKIT_COLD V compensate_in_units(V e, V err) {
  using VD = decltype(double_of(e));
  constexpr double units = 0x1p149, magic = 0x1.8p52;
  constexpr bool kTwoHalves = 2 * VD::N == V::N;
  VD e_lo, e_hi = VD::zero(), err_lo, err_hi = VD::zero();
  widen_halves(e, e_lo, e_hi);
  widen_halves(err, err_lo, err_hi);
  auto half = [&](VD ev, VD errv) {
    const VD mag = VD::set1(magic), one_half = VD::set1(0.5);
    const VD u = ev * VD::set1(units);
    const VD t = u * errv;
    const VD r = (t + mag) - mag;
    const VD diff = t - r;
    const VD s = u + r;
    const VD s_half = s * one_half;
    const auto odd = ne(s_half, (s_half + mag) - mag);
    const VD other = r + (diff + diff);
    const VD rounded = select(eq(abs_(diff), one_half), select(odd, other, r), r);
    return (u + rounded) * VD::set1(1.0 / units);
  };
  const VD lo = half(e_lo, err_lo);
  return narrow_halves(lo, kTwoHalves ? half(e_hi, err_hi) : lo);
}

// exp_diff's result where some lane of d lies beyond the normal range (a cold path: out of
// line, so that the loops calling exp_diff keep their registers).
template <class V>
LOGITKIT_COLD V exp_diff_beyond_normal(V d, V err) {
  using T = typename V::T;
  using C = MathConsts<T>;
  const V e = exp_in_range(d, lt(abs_(d), V::set1(C::normal_range)));
  if constexpr (sizeof(T) == 4) {
    // A subnormal e with a compensation to apply goes through units: the fma would take a
    // subnormal. The fma runs on the other lanes (on 1 where e is subnormal meanwhile), and
    // a subnormal e without compensation is the result as it is.
    const V zero = V::zero();
    const auto normal = mask_or(le(V::set1(C::min_normal), e), eq(e, zero));
    const V e_normal = select(normal, e, V::set1(T(1)));
    const V plain = select(normal, fma(e_normal, err, e_normal), e);
    const auto plain_will_do = eq(select(normal, zero, err), zero);
    if (all_(plain_will_do)) return plain;
    return select(plain_will_do, plain, compensate_in_units(e, err));
  }
  return fma(e, err, e);
}

// exp(x - m) for x <= m, m finite. The difference x - m is rounded when x and m are far
// apart, and exp turns that absolute error into a relative one of up to |x - m| * 2^-24 in
// float; the rounding error of the subtraction (recovered exactly by TwoSum) is folded back
// in with one fma, so the result is as accurate as exp itself. Where x - m lies below
// -`floor` the result underflows anyway and the error term (NaN for x = -inf) is dropped.
// No clamp on x: for |m| beyond 2^32 (float) m - floor would round back to m.
template <class V>
LOGITKIT_ALWAYS_INLINE V exp_diff(V x, V m, V neg_m) {
  using T = typename V::T;
  constexpr T floor = sizeof(T) == 4 ? T(128) : T(1536);
  const V d = x - m;
  const V x_part = d + m;       // the part of x that d accounts for
  const V m_part = d - x_part;  // and of -m
  const V err = select(lt(d, V::set1(-floor)), V::zero(), (x - x_part) + (neg_m - m_part));
  // e for the lanes in range (normal, as is the compensated result), taken before the test
  // as exp_ takes it: branching first measured 3% slower on softmax (4096x1000 float32,
  // 2 threads, out=). Lanes out of range are not computed where the ISA can mask them:
  // just beyond the range the fast path's fma rounds to a subnormal, with an assist.
  const auto in_range = lt(abs_(d), V::set1(MathConsts<T>::normal_range));
  V scale, expm1_r;
  exp_normal_range_parts(d, scale, expm1_r);
  const V e = fma_keeping(in_range, scale, expm1_r, scale);
  if (all_(in_range)) return fma(e, err, e);
  return exp_diff_beyond_normal(d, err);
}

template <class S>
inline bool has_nan(const S* x, ptrdiff_t n) {
  for (ptrdiff_t i = 0; i < n; ++i)
    if (std::isnan(widen(x[i]))) return true;
  return false;
}

// The max of x[0, n); with `widened`, x's entries are also stored there in the compute type,
// so that a sweep over the same block reads them without converting them again.
template <class V, class S>
typename V::T row_max(const S* x, ptrdiff_t n, typename V::T* widened = nullptr) {
  using T = typename V::T;
  constexpr T ninf = -std::numeric_limits<T>::infinity();
  V m0 = V::set1(ninf), m1 = m0, m2 = m0, m3 = m0;
  auto keep = [&](ptrdiff_t i, V v) {
    if (widened) v.store(widened + i);
    return v;
  };
  ptrdiff_t i = 0;
  for (; i + 4 * V::N <= n; i += 4 * V::N) {
    m0 = max_(m0, keep(i, V::load(x + i)));
    m1 = max_(m1, keep(i + V::N, V::load(x + i + V::N)));
    m2 = max_(m2, keep(i + 2 * V::N, V::load(x + i + 2 * V::N)));
    m3 = max_(m3, keep(i + 3 * V::N, V::load(x + i + 3 * V::N)));
  }
  for (; i + V::N <= n; i += V::N) m0 = max_(m0, keep(i, V::load(x + i)));
  if (i < n) {
    const V tail = load_partial<V>(x + i, n - i, ninf);
    if (widened) store_partial(widened + i, n - i, tail);
    m0 = max_(m0, tail);
  }
  return reduce_max(max_(max_(m0, m1), max_(m2, m3)));
}

// y = (x - shift) - offset. The rounding error of x - shift (TwoSum) is added back so
// entries near the maximum, where the result is small, keep their relative precision.
template <class V>
LOGITKIT_ALWAYS_INLINE V sub_shift_exact(V x, V s, V neg_s, V c) {
  const V d = x - s;
  const V x_part = d + s;
  const V s_part = d - x_part;
  const V err = (x - x_part) + (neg_s - s_part);
  // x = -inf makes err NaN (inf - inf); it has no rounding error to restore, and a NaN x
  // still propagates through d.
  return (d - c) + select(eq(err, err), err, V::zero());
}

template <class V, class S>
void sub_shift(const S* x, S* y, ptrdiff_t n, typename V::T shift, typename V::T offset,
               bool stream) {
  const V s = V::set1(shift), neg_s = V::set1(-shift), c = V::set1(offset);
  write_row<V>(y, n, stream, [&](ptrdiff_t i, ptrdiff_t count) {
    return sub_shift_exact(load_n<V>(x + i, count, shift), s, neg_s, c);
  });
}

template <class VD>
inline void scale_wide(WideSum<VD>& s, double factor) {
  const VD f = VD::set1(factor);
  s.a0 = s.a0 * f;
  s.a1 = s.a1 * f;
}

// Max, then the exponentials split into the entries equal to the max and the rest, in one
// read of the row: each block of kStatsBlockBytes (table.h) is swept twice while it sits in
// L1, once for its maximum and once for its terms, so the memory streams while the exps are
// computed.
// A block with a larger maximum rescales what was summed so far by exp(old - new) (in
// double; the earlier at-max counts become ordinary terms). The blocks are the same on
// every ISA, so ISAs differ only in the order of additions within a block.
// Plain exp(x - m) suffices here: the rounding of x - m scales a term's error by the term
// itself, so far-off entries (the only ones with a large rounding) barely touch the sum.
// Four vectors are added pairwise in the input precision before each widening to double:
// two roundings of a handful of terms, at a quarter of the widening cost.
//
// The blocked loop of the one-read statistics, shared by row_stats and row_stats_store.
// For each block: its max; then sweep(xb, b, len, m, count0, count1, rest) adds the terms
// of the block x[b, b + len), whose entries xb holds (x + b, or their float copy), against
// the running max m (finite), after the sums so far were rescaled if the block raised it;
// blocks before the first finite entry go to before_first(b, len) instead.
// A row whose max is not finite returns that max (NaN where the row holds a NaN) and no
// sums: the caller takes the special path.
template <class V, class VD, class S, class Sweep, class BeforeFirst>
RowStats<typename V::T> one_read_stats(const S* x, ptrdiff_t n, Sweep&& sweep,
                                       BeforeFirst&& before_first) {
  using T = typename V::T;
  constexpr T ninf = -std::numeric_limits<T>::infinity();
  constexpr ptrdiff_t block = kStatsBlockBytes / static_cast<ptrdiff_t>(sizeof(T));
  static_assert(block % (4 * V::N) == 0, "a block is a whole number of 4-vector steps");
  const V zero = V::zero();
  T m = ninf;
  WideSum<VD> rest;
  double earlier_at_max = 0;  // entries at a smaller running maximum, already rescaled
  // Entries equal to the running max: counted per lane in T within a block, then moved into
  // a double after each block, since a float lane stops counting at 2^24 and a row may
  // hold more ties than that (3 * 2^23 ones, say).
  double at_max = 0;
  V count0 = zero, count1 = zero;
  // A 16-bit block is converted once, by its max sweep, and its terms read the float copy
  // in L1: 512x32000, 2 threads, out=, softmax 3.55 -> 3.22 ms in bfloat16 and 3.55 -> 3.25
  // ms in float16, log_softmax 3.55 -> 3.30 ms in bfloat16 (medians of 40 calls, three
  // alternating runs; `python -m logitkit bench --ops softmax,log_softmax --shapes
  // 512x32000:bf16,512x32000:f16 --interleave --repeat 15` compares with PyTorch).
  constexpr bool convert_once = !std::is_same_v<S, T>;
  alignas(64) T widened[convert_once ? block : 1];
  for (ptrdiff_t b = 0; b < n; b += block) {
    const ptrdiff_t len = std::min(block, n - b);
    prefetch_lines(x + b + kPrefetchAhead / ptrdiff_t(sizeof(S)), len * ptrdiff_t(sizeof(S)));
    const T bm = row_max<V>(x + b, len, convert_once ? widened : nullptr);
    if (bm > m) {
      if (!std::isfinite(bm)) {  // +inf
        m = bm;
        break;
      }
      if (m != ninf) {
        const double f = std::exp(double(m) - double(bm));
        scale_wide(rest, f);
        earlier_at_max = (earlier_at_max + at_max) * f;
        at_max = 0;
      }
      m = bm;
    } else if (std::isnan(bm)) {
      m = bm;
      break;
    }
    if (m == ninf) {
      // Only -inf so far, unless the max skipped a NaN (max_ keeps a NaN only sometimes):
      // later blocks would not see it, so it is looked for here.
      if (has_nan(x + b, len)) return {std::numeric_limits<T>::quiet_NaN(), 0.0, 0.0};
      before_first(b, len);
      continue;
    }
    if constexpr (convert_once) {
      sweep(static_cast<const T*>(widened), b, len, m, count0, count1, rest);
    } else {
      sweep(x + b, b, len, m, count0, count1, rest);
    }
    at_max += reduce_add(count0 + count1);
    count0 = count1 = zero;
  }
  // A NaN that the max skipped in a later block shows up as a NaN term instead.
  if (!std::isfinite(m)) {
    const T limit = m == ninf ? ninf : std::numeric_limits<T>::infinity();
    return {has_nan(x, n) ? std::numeric_limits<T>::quiet_NaN() : limit, 0.0, 0.0};
  }
  return {m, at_max, rest.total() + earlier_at_max};
}

template <class V, class VD, class S>
RowStats<typename V::T> row_stats(const S* x, ptrdiff_t n) {
  using T = typename V::T;
  constexpr T ninf = -std::numeric_limits<T>::infinity();
  const V zero = V::zero(), one = V::set1(T(1));
  auto sweep = [&](const auto* xb, ptrdiff_t, ptrdiff_t len, T m, V& count0, V& count1,
                   WideSum<VD>& rest) {
    const V mv = V::set1(m);
    auto term = [&](V xv, V& count) {
      const auto at_max = eq(xv, mv);
      count = count + select(at_max, one, zero);
      return select(at_max, zero, exp_sum_term_(xv - mv));
    };
    ptrdiff_t i = 0;
    for (; i + 4 * V::N <= len; i += 4 * V::N) {
      const V a = term(V::load(xb + i), count0) + term(V::load(xb + i + V::N), count1);
      const V c =
          term(V::load(xb + i + 2 * V::N), count0) + term(V::load(xb + i + 3 * V::N), count1);
      rest.add(a + c);
    }
    for (; i + V::N <= len; i += V::N) rest.add(term(V::load(xb + i), count0));
    if (i < len) rest.add(term(load_partial<V>(xb + i, len - i, ninf), count1));
  };
  return one_read_stats<V, VD>(x, n, sweep, [](ptrdiff_t, ptrdiff_t) {});
}

// row_stats that also stores y = exp(x - m_b) (compensated, as softmax stores it), m_b
// being the running maximum its block was summed against, and m_b into block_max[b]: the
// cross-entropy gradient and softmax are then one scaling of y away, by exp(m_b - max) / sum
// per block. Blocks before the first entry above -inf store 0 with m_b = -inf. y must not be
// x. With kSplitMax false (softmax, which needs only the sum), the entries at the max are not
// kept apart: at_max is 0 and rest the whole sum. Four vectors are added in T before each
// widening, as row_stats adds them.
template <class V, class VD, bool kSplitMax, class S>
RowStats<typename V::T> row_stats_store(const S* x, typename V::T* y, ptrdiff_t n,
                                        typename V::T* block_max) {
  using T = typename V::T;
  constexpr T ninf = -std::numeric_limits<T>::infinity();
  constexpr ptrdiff_t block = kStatsBlockBytes / static_cast<ptrdiff_t>(sizeof(T));
  const V zero = V::zero(), one = V::set1(T(1));
  auto sweep = [&](const auto* xb, ptrdiff_t b, ptrdiff_t len, T m, V& count, V&,
                   WideSum<VD>& rest) {
    T* yb = y + b;
    block_max[b / block] = m;
    const V mv = V::set1(m), neg_m = V::set1(-m);
    // Stores exp(x - m) for `lanes` entries from i on, and returns their term of the sum.
    // A tail's padding lanes hold m, not -inf: exp(0) keeps the whole vector on exp's fast
    // path (a -inf lane would send it down the full-range one, 17% of a 1000-entry row's
    // time), and they are zeroed before they are counted.
    auto term = [&](ptrdiff_t i, ptrdiff_t lanes) {
      const V xv = load_n<V>(xb + i, lanes, m);
      V e = exp_diff(xv, mv, neg_m);
      if (lanes != V::N) e = select(tail_mask<V>(lanes), e, zero);
      store_n(yb + i, lanes, e);
      if (!kSplitMax) return e;
      const V counted = lanes == V::N ? xv : select(tail_mask<V>(lanes), xv, V::set1(ninf));
      const auto at_max = eq(counted, mv);
      count = count + select(at_max, one, zero);
      return select(at_max, zero, e);
    };
    constexpr ptrdiff_t N = V::N;
    ptrdiff_t i = 0;
    for (; i + 4 * N <= len; i += 4 * N) {
      const V a = term(i, N) + term(i + N, N);
      rest.add(a + (term(i + 2 * N, N) + term(i + 3 * N, N)));
    }
    for (; i + N <= len; i += N) rest.add(term(i, N));
    if (i < len) rest.add(term(i, len - i));
  };
  auto before_first = [&](ptrdiff_t b, ptrdiff_t len) {
    block_max[b / block] = ninf;
    for (ptrdiff_t i = 0; i < len; ++i) y[b + i] = T(0);
  };
  return one_read_stats<V, VD>(x, n, sweep, before_first);
}

// dst = src * coeff * exp(block_max[b] - m) for each block b of kStatsBlockBytes, src holding
// exp(x - block_max[b]) as row_stats_store left it (src may be dst). A block with
// block_max = -inf holds zeros and gets a factor of 0. With `stream` the writes bypass the
// cache, with one store fence at the end.
template <class V, class S>
void scale_blocks(const typename V::T* src, S* dst, ptrdiff_t n, const typename V::T* block_max,
                  typename V::T m, double coeff, bool stream) {
  using T = typename V::T;
  constexpr ptrdiff_t block = kStatsBlockBytes / static_cast<ptrdiff_t>(sizeof(T));
  for (ptrdiff_t b = 0; b < n; b += block) {
    const T factor = T(coeff * std::exp(double(block_max[b / block]) - double(m)));
    const V f = V::set1(factor);
    const ptrdiff_t len = std::min(block, n - b);
    if constexpr (sizeof(T) == 4) {
      // Entries whose product with the factor, or which themselves, lie below the normal
      // range are scaled in double (see scale_in_double): a subnormal multiply costs a
      // microcode assist on Intel cores. With exp_diff's compensation in units, this took
      // float32 softmax of logits of spread 20 (512x32000, 2 threads) from 50 to 20 ms (5 ms
      // at spread 1). Same bits. The test is taken on the min of four vectors, and per
      // vector only where that finds one.
      constexpr double min_normal = MathConsts<T>::min_normal;
      const double from = factor > 0 ? std::max(min_normal / double(factor), min_normal)
                                     : std::numeric_limits<double>::infinity();
      const V normal_from =
          V::set1(from > double(std::numeric_limits<T>::max()) ? std::numeric_limits<T>::infinity()
                                                               : T(from));
      auto scaled = [&](V e) {
        return all_(le(normal_from, e)) ? e * f : scale_in_double(e, double(factor));
      };
      const T* in = src + b;
      S* out = dst + b;
      ptrdiff_t j = 0;
      if (!stream) {
        constexpr ptrdiff_t N = V::N;
        for (; j + 4 * N <= len; j += 4 * N) {
          const V e0 = V::load(in + j), e1 = V::load(in + j + N), e2 = V::load(in + j + 2 * N),
                  e3 = V::load(in + j + 3 * N);
          if (all_(le(normal_from, min_(min_(e0, e1), min_(e2, e3))))) {
            (e0 * f).store(out + j);
            (e1 * f).store(out + j + N);
            (e2 * f).store(out + j + 2 * N);
            (e3 * f).store(out + j + 3 * N);
          } else {
            scaled(e0).store(out + j);
            scaled(e1).store(out + j + N);
            scaled(e2).store(out + j + 2 * N);
            scaled(e3).store(out + j + 3 * N);
          }
        }
      }
      write_row<V>(
          out + j, len - j, stream,
          [&](ptrdiff_t i, ptrdiff_t count) { return scaled(load_n<V>(in + j + i, count, 0)); },
          false);
    } else {
      write_row<V>(
          dst + b, len, stream,
          [&](ptrdiff_t j, ptrdiff_t count) { return load_n<V>(src + b + j, count, 0) * f; },
          false);
    }
  }
  if (stream) V::stream_fence();
}

// As row_stats with weights b; entries with b == 0 are not counted at all.
template <class V, class VD, class S>
RowStats<typename V::T> weighted_row_stats(const S* x, const S* b, ptrdiff_t n) {
  using T = typename V::T;
  constexpr T ninf = -std::numeric_limits<T>::infinity();
  const V zero = V::zero(), vninf = V::set1(ninf);
  auto counted = [&](V xv, V bv) { return select(ne(bv, zero), xv, vninf); };
  V m0 = vninf, m1 = vninf;
  ptrdiff_t i = 0;
  for (; i + 2 * V::N <= n; i += 2 * V::N) {
    m0 = max_(m0, counted(V::load(x + i), V::load(b + i)));
    m1 = max_(m1, counted(V::load(x + i + V::N), V::load(b + i + V::N)));
  }
  for (; i + V::N <= n; i += V::N) m0 = max_(m0, counted(V::load(x + i), V::load(b + i)));
  if (i < n) {
    m0 = max_(m0, counted(load_partial<V>(x + i, n - i, ninf), load_partial<V>(b + i, n - i, 0)));
  }
  const T m = reduce_max(max_(m0, m1));
  if (!std::isfinite(m)) return {m, 0.0, 0.0};  // the special path rescans x and b

  const V mv = V::set1(m);
  WideSum<VD> rest, at_max_weight;
  auto step = [&](V xv, V bv) {
    const V xc = counted(xv, bv);
    const auto at_max = eq(xc, mv);
    rest.add(select(at_max, zero, exp_sum_term_(xc - mv) * bv));
    at_max_weight.add(select(at_max, bv, zero));
  };
  for (i = 0; i + V::N <= n; i += V::N) step(V::load(x + i), V::load(b + i));
  if (i < n) step(load_partial<V>(x + i, n - i, ninf), load_partial<V>(b + i, n - i, 0));
  return {m, at_max_weight.total(), rest.total()};
}

// ---- whole-row operations for rows that stay in cache -------------------------------

// The one-read statistics store exp(x - m_b) per block as they go (into y, or in place into
// a per-thread scratch row, so that a special row still finds x whole), and one more sweep
// scales each block to the row's max and sum: one exp per entry, the row read from memory
// once, and the same bits in place as out of place.
// A 16-bit y cannot hold the exponentials at full precision, so they go to the scratch row.
template <class V, class VD, class S>
void softmax_row(const S* x, S* y, ptrdiff_t n, Workspace ws) {
  using T = typename V::T;
  constexpr ptrdiff_t block = kStatsBlockBytes / static_cast<ptrdiff_t>(sizeof(T));
  T* exps = nullptr;
  if constexpr (std::is_same_v<S, T>) {
    exps = x == y ? take_scratch<T>(ws, n) : y;
  } else {
    exps = take_scratch<T>(ws, n);
  }
  T* block_max = take_scratch<T>(ws, n / block + 1);
  const RowStats<T> s = row_stats_store<V, VD, false>(x, exps, n, block_max);
  if (!std::isfinite(s.max)) return softmax_special_row(x, y, n, false);
  scale_blocks<V>(exps, y, n, block_max, s.max, 1.0 / (s.at_max + s.rest), false);
}

template <class V, class VD, class S>
void log_softmax_row(const S* x, S* y, ptrdiff_t n, bool stream) {
  using T = typename V::T;
  const RowStats<T> s = row_stats<V, VD>(x, n);
  if (!std::isfinite(s.max)) return softmax_special_row(x, y, n, true);
  sub_shift<V>(x, y, n, s.max, T(log_abs_sum(s.at_max, s.rest).value), stream);
}

template <class V, class VD, class S>
void masked_softmax_row(const S* x, const S* mask, S* y, ptrdiff_t n, bool log) {
  using T = typename V::T;
  const RowStats<T> s = weighted_row_stats<V, VD>(x, mask, n);  // 0/1 weights
  if (!std::isfinite(s.max)) return masked_softmax_special_row(x, mask, y, n, log);
  const double sum = s.at_max + s.rest;
  if (std::isnan(sum)) {  // a NaN among the counted entries
    for (ptrdiff_t i = 0; i < n; ++i) y[i] = narrow<S>(std::numeric_limits<T>::quiet_NaN());
    return;
  }
  const V m = V::set1(s.max), neg_m = V::set1(-s.max), zero = V::zero();
  const V scale = V::set1(T(1.0 / sum));
  const V offset = V::set1(T(log_abs_sum(s.at_max, s.rest).value));
  const V off_value = V::set1(log ? -std::numeric_limits<T>::infinity() : T(0));
  auto value = [&](V xv, V mv) {
    const V v = log ? sub_shift_exact(xv, m, neg_m, offset) : exp_diff(xv, m, neg_m) * scale;
    return select(ne(mv, zero), v, off_value);
  };
  ptrdiff_t i = 0;
  for (; i + V::N <= n; i += V::N) value(V::load(x + i), V::load(mask + i)).store(y + i);
  if (i < n) {
    store_partial(y + i, n - i,
                  value(load_partial<V>(x + i, n - i, s.max), load_partial<V>(mask + i, n - i, 0)));
  }
}

template <class V, class VD, class S>
void softmax_backward_row(const S* g, const S* y, S* out, ptrdiff_t n, bool log) {
  using T = typename V::T;
  constexpr ptrdiff_t step = prefetch_step<V, S>();
  WideSum<VD> acc;
  ptrdiff_t i = 0;
  // The first sweep streams g (and y) from memory with little arithmetic: prefetched as the
  // elementwise kernels are. log_softmax's reads y first in the second sweep.
  for (; i + step <= n; i += step) {
    prefetch_step_ahead<V>(g, i);
    if (!log) prefetch_step_ahead<V>(y, i);
    for (ptrdiff_t j = i; j < i + step; j += V::N) {
      const V gv = V::load(g + j);
      acc.add(log ? gv : gv * V::load(y + j));
    }
  }
  for (; i + V::N <= n; i += V::N) {
    const V gv = V::load(g + i);
    acc.add(log ? gv : gv * V::load(y + i));
  }
  if (i < n) {
    const V gv = load_partial<V>(g + i, n - i, 0);
    acc.add(log ? gv : gv * load_partial<V>(y + i, n - i, 0));
  }
  const V s = V::set1(T(acc.total()));
  auto value = [&](V gv, V yv) { return log ? gv - exp_(yv) * s : yv * (gv - s); };
  i = 0;
  if (log) {
    for (; i + step <= n; i += step) {
      prefetch_step_ahead<V>(y, i);
      for (ptrdiff_t j = i; j < i + step; j += V::N) {
        value(V::load(g + j), V::load(y + j)).store(out + j);
      }
    }
  }
  for (; i + V::N <= n; i += V::N) value(V::load(g + i), V::load(y + i)).store(out + i);
  if (i < n) {
    store_partial(out + i, n - i,
                  value(load_partial<V>(g + i, n - i, 0), load_partial<V>(y + i, n - i, 0)));
  }
}

template <class V, class VD, class S>
LseResult logsumexp_row(const S* x, const S* b, ptrdiff_t n) {
  using T = typename V::T;
  const RowStats<T> s = b ? weighted_row_stats<V, VD>(x, b, n) : row_stats<V, VD>(x, n);
  if (!std::isfinite(s.max)) return logsumexp_special_row(x, b, n);
  return finish_logsumexp(s);
}

// ---- elementwise ---------------------------------------------------------------------

// For x < 0 the result is e r, e = exp(x) and r = 1 / (1 + e). Where e is beyond the normal
// range (x < -87 in float) r is exactly 1 and the result is e, which is taken as it is: the
// product e r of a subnormal e costs a microcode assist on Intel cores, and made sigmoid 9x
// slower over entries from -100 to -88 (512x32000 float32, 2 threads). Same bits either way.
template <class V>
LOGITKIT_ALWAYS_INLINE V sigmoid_(V x) {
  using T = typename V::T;
  const V one = V::set1(T(1));
  const auto negative = lt(x, V::zero());
  const V z = V::zero() - abs_(x);
  const auto in_range = lt(V::set1(-MathConsts<T>::normal_range), z);
  if (all_(in_range)) {
    const V e = exp_normal_range(z);  // in (0, 1]: never overflows
    const V r = one / (one + e);
    return select(negative, e * r, r);
  }
  const V e = exp_in_range(z, in_range);
  const V r = one / (one + e);
  const V product = select(in_range, e, V::zero()) * r;
  return select(negative, select(in_range, product, e), r);
}

template <class V>
LOGITKIT_ALWAYS_INLINE V log_sigmoid_(V x) {
  return min_(x, V::zero()) - log1p_unit_(exp_neg_abs_(x));
}

template <class V>
LOGITKIT_ALWAYS_INLINE V softplus_(V x) {
  return max_(x, V::zero()) + log1p_unit_(exp_neg_abs_(x));
}

// log(p / (1 - p)); near p = 1/2 the ratio is close to 1 and its log loses relative
// precision, so there it is log1p((2p - 1) / (1 - p)). 2p - 1 is exact for p in [1/4, 1],
// while 1 - p is not for p < 1/2, which is why the numerator is not written p - (1 - p).
template <class V>
LOGITKIT_ALWAYS_INLINE V logit_(V p) {
  using T = typename V::T;
  const V one = V::set1(T(1));
  const V q = one - p;
  const auto near_half = lt(abs_(p - V::set1(T(0.5))), V::set1(T(0.2)));
  return select(near_half, log1p_(((p + p) - one) / q), log_(p / q));
}

// bce_row's loss for the lanes of li that are infinite (a float that overflowed), formed
// again in double: li's lanes become the double values rounded once, and the double values
// go into `overflowed`. Returns li with those lanes 0, the part to add to the vector sum.
// (A row tail's padding lanes are finite, so they never come here.)
template <class V>
V bce_overflow_lanes(V& li, V xv, V yv, V wv, V pwv, double& overflowed) {
  using T = typename V::T;
  alignas(64) T l[V::N], rest[V::N], x[V::N], y[V::N], w[V::N], pw[V::N];
  li.store(l);
  li.store(rest);
  xv.store(x);
  yv.store(y);
  wv.store(w);
  pwv.store(pw);
  for (int j = 0; j < V::N; ++j) {
    if (!std::isinf(l[j])) continue;
    const double xd = x[j], yd = y[j];
    const double common = std::log1p(std::exp(-std::fabs(xd)));
    const double sp_pos = std::fmax(xd, 0.0) + common, sp_neg = std::fmax(-xd, 0.0) + common;
    const double c_pos = double(pw[j]) * yd, c_neg = 1.0 - yd;
    const double exact =
        double(w[j]) * ((c_pos == 0 ? 0.0 : c_pos * sp_neg) + (c_neg == 0 ? 0.0 : c_neg * sp_pos));
    overflowed += exact;
    l[j] = static_cast<T>(exact);
    rest[j] = T(0);
  }
  li = V::load(l);
  return V::load(rest);
}

// Binary cross-entropy with logits, elementwise; both softplus terms share one exp and one
// log1p, and neither cancels for any x (see kernels/table.h for the formula).
template <class V, class VD, class S>
double bce_row(const S* x, const S* y, const S* w, const S* pw, ptrdiff_t n, double smoothing,
               S* loss, S* grad, const S* grad_scale, double scale) {
  using T = typename V::T;
  const V zero = V::zero(), one = V::set1(T(1));
  const V keep = V::set1(T(1.0 - smoothing)), spread = V::set1(T(smoothing / 2));
  const V s = V::set1(T(scale));
  WideSum<VD> total;
  double overflowed = 0;  // entries formed in double by bce_overflow_lanes, summed apart
  auto step = [&](ptrdiff_t i, ptrdiff_t count) {
    auto ld = [&](const S* p, T fill) {
      return count == V::N ? V::load(p + i) : load_partial<V>(p + i, count, fill);
    };
    const V xv = ld(x, 0);
    const V yv = fma(keep, ld(y, 0), spread);
    const V wv = w ? ld(w, 0) : one;
    const V pwv = pw ? ld(pw, 0) : one;
    const V e = exp_neg_abs_(xv);  // in (0, 1]
    const V l = log1p_unit_(e);
    const V sp_pos = max_(xv, zero) + l;         // softplus(x)
    const V sp_neg = max_(zero - xv, zero) + l;  // softplus(-x)
    // A term with coefficient 0 adds 0 even where its softplus is infinite (x = +-inf).
    auto term = [&](V c, V sp) { return select(eq(c, zero), zero, c * sp); };
    V li = wv * (term(pwv * yv, sp_neg) + term(one - yv, sp_pos));
    V li_sum = li;
    if constexpr (std::is_same_v<T, float>) {
      // An entry whose float loss overflows (logits near float's range, times a weight) is
      // formed again in double: the sum and the mean, kept in double, stay finite when the
      // exact ones are, and the stored loss is the exact one rounded once. NaN lanes also
      // take this branch and are left as they are.
      if (!all_(lt(abs_(li), V::set1(std::numeric_limits<T>::infinity())))) {
        li_sum = bce_overflow_lanes(li, xv, yv, wv, pwv, overflowed);
      }
    }
    if (count == V::N) {
      if (loss) li.store(loss + i);
      total.add(li_sum);
    } else {
      if (loss) store_partial(loss + i, count, li);
      total.add(select(tail_mask<V>(count), li_sum, zero));
    }
    if (grad) {
      const V r = one / (one + e);
      const auto neg = lt(xv, zero);
      const V sig_pos = select(neg, e * r, r);  // sigmoid(x)
      const V sig_neg = select(neg, r, e * r);  // sigmoid(-x)
      const V gs = grad_scale ? ld(grad_scale, 0) : s;
      const V gi = gs * wv * ((one - yv) * sig_pos - pwv * yv * sig_neg);
      store_n(grad + i, count, gi);
    }
  };
  constexpr ptrdiff_t pstep = prefetch_step<V, S>();
  ptrdiff_t i = 0;
  for (; i + pstep <= n; i += pstep) {
    for (const S* p : {x, y, w, pw, grad_scale}) {
      if (p) prefetch_step_ahead<V>(p, i);
    }
    for (ptrdiff_t j = i; j < i + pstep; j += V::N) step(j, V::N);
  }
  for (; i + V::N <= n; i += V::N) step(i, V::N);
  if (i < n) step(i, n - i);
  return total.total() + overflowed;
}

// -x log x; 0 at 0, -inf for x < 0 (scipy.special.entr).
template <class V>
LOGITKIT_ALWAYS_INLINE V entr_(V x) {
  using T = typename V::T;
  const V zero = V::zero();
  const V r = zero - x * log_(x);
  return select(lt(x, zero), V::set1(-std::numeric_limits<T>::infinity()),
                select(eq(x, zero), zero, r));
}

// For x, y > 0 with u = (x - y) / y: log(x / y) = log1p(u) and, for kl_div,
// (1 + u) log1p(u) - u. Near x = y both come from s = u / (2 + u) and the atanh series,
// where (1 + u) log1p(u) - u = (2 s^2 + tail (1 + s)) / (1 - s), tail = 2 atanh(s) - 2 s,
// has no cancellation.
template <class V>
LOGITKIT_ALWAYS_INLINE void log_ratio_terms(V x, V y, V& log_ratio, V& kl_excess) {
  using T = typename V::T;
  const V one = V::set1(T(1)), two = V::set1(T(2));
  const V u = (x - y) / y;
  const auto near = mask_or(eq(u, V::zero()), lt(abs_(u - splat<V>(0.06)), splat<V>(0.34)));
  const V s = u / (two + u);
  const V tail = s * atanh_series_tail(s * s, T());  // 2 atanh(s) - 2 s
  const V near_log = fma(s, two, tail);
  const V near_excess = y * (fma(two * s, s, tail * (one + s)) / (one - s));
  // log1p(u) for -1/2 < u < 1, log(x / y) beyond (one rounding of a ratio far from 1),
  // and the two logs apart only where x / y over- or underflows. Below u = -1/2 the ratio
  // x / y = 1 + u is small and u holds it only in its last bits: log1p(u) there was off by
  // 200 ulp in float64 at x / y = 3e-5 (1.4e-4 relative in float32).
  const V q = x / y;
  const V quarter = V::set1(T(0.25)), three_quarters = V::set1(T(0.75));
  V far_log = select(lt(abs_(u - quarter), three_quarters), log1p_(u), log_(q));
  const auto q_out_of_range = mask_or(eq(q, V::set1(std::numeric_limits<T>::infinity())),
                                      lt(q, V::set1(std::numeric_limits<T>::min())));
  far_log = select(q_out_of_range, log_(x) - log_(y), far_log);
  log_ratio = select(near, near_log, far_log);
  kl_excess = select(near, near_excess, fma(x, far_log, y - x));
}

template <class V>
inline V apply_binary(int op, V a, V b) {
  using T = typename V::T;
  const V zero = V::zero(), inf = V::set1(std::numeric_limits<T>::infinity());
  switch (op) {
    case kRelEntr:
    case kKlDivElementwise: {
      V log_ratio, kl_excess;
      log_ratio_terms(a, b, log_ratio, kl_excess);
      const bool rel = op == kRelEntr;
      const V nan = V::set1(std::numeric_limits<T>::quiet_NaN());
      V r = rel ? a * log_ratio : kl_excess;  // x, y finite and positive
      // The edges, later rules overriding earlier ones (SciPy's values):
      r = select(eq(b, inf), rel ? V::zero() - inf : nan, r);      // y = inf
      r = select(eq(a, inf), select(eq(b, inf), nan, inf), r);     // x = inf
      r = select(eq(b, zero), inf, r);                               // y = 0 < x
      r = select(eq(a, zero), rel ? zero : b, r);                    // x = 0 <= y
      r = select(mask_or(lt(a, zero), lt(b, zero)), inf, r);        // outside the domain
      return select(mask_or(ne(a, a), ne(b, b)), nan, r);
    }
    // A zero target adds 0 even against an input of -inf (PyTorch's 0 * -inf is NaN), but
    // a NaN input stays NaN, as in PyTorch and the reference.
    case kKlDivTorch:
      return select(eq(b, zero), select(ne(a, a), a, zero), b * (log_(b) - a));
    default: {  // kKlDivTorchLogTarget
      const V e = exp_(b);
      return select(eq(e, zero), select(ne(a, a), a, zero), e * (b - a));
    }
  }
}

template <class V, int Op, class S>
void binary_row(const S* a, const S* b, S* y, ptrdiff_t n) {
  constexpr ptrdiff_t step = prefetch_step<V, S>();
  ptrdiff_t i = 0;
  for (; i + step <= n; i += step) {
    prefetch_step_ahead<V>(a, i);
    prefetch_step_ahead<V>(b, i);
    for (ptrdiff_t j = i; j < i + step; j += V::N) {
      apply_binary(Op, V::load(a + j), V::load(b + j)).store(y + j);
    }
  }
  for (; i + V::N <= n; i += V::N) apply_binary(Op, V::load(a + i), V::load(b + i)).store(y + i);
  if (i < n) {
    store_partial(y + i, n - i,
                  apply_binary(Op, load_partial<V>(a + i, n - i, 1), load_partial<V>(b + i, n - i, 1)));
  }
}

template <class V>
inline V apply_unary(int op, V x) {
  switch (op) {
    case kSigmoid: return sigmoid_(x);
    case kLogSigmoid: return log_sigmoid_(x);
    case kSoftplus: return softplus_(x);
    case kLogit: return logit_(x);
    case kExp: return exp_(x);
    case kEntr: return entr_(x);
    default: return log_(x);
  }
}

template <class V, int Op, class S>
void unary_row(const S* x, S* y, ptrdiff_t n) {
  constexpr ptrdiff_t step = prefetch_step<V, S>();
  ptrdiff_t i = 0;
  for (; i + step <= n; i += step) {
    prefetch_step_ahead<V>(x, i);
    for (ptrdiff_t j = i; j < i + step; j += V::N) apply_unary(Op, V::load(x + j)).store(y + j);
  }
  write_row<V>(y + i, n - i, false, [&](ptrdiff_t j, ptrdiff_t count) {
    return apply_unary(Op, load_n<V>(x + i + j, count, 0));
  });
}

// ---- conversion between a storage type and its compute type ------------------------

template <class V, class S>
void widen_row(const S* src, typename V::T* dst, ptrdiff_t n) {
  write_row<V>(dst, n, false,
               [&](ptrdiff_t i, ptrdiff_t count) { return load_n<V>(src + i, count, 0); });
}

template <class V, class S>
void narrow_row(const typename V::T* src, S* dst, ptrdiff_t n) {
  write_row<V>(dst, n, false,
               [&](ptrdiff_t i, ptrdiff_t count) { return load_n<V>(src + i, count, 0); });
}

// ---- the memory yardstick: the same loads and stores as the kernels, and no arithmetic --

template <class V>
double read_sum(const typename V::T* x, ptrdiff_t n) {
  V s0 = V::zero(), s1 = s0, s2 = s0, s3 = s0;
  ptrdiff_t i = 0;
  for (; i + 4 * V::N <= n; i += 4 * V::N) {
    s0 = s0 + V::load(x + i);
    s1 = s1 + V::load(x + i + V::N);
    s2 = s2 + V::load(x + i + 2 * V::N);
    s3 = s3 + V::load(x + i + 3 * V::N);
  }
  for (; i < n; i += V::N) s0 = s0 + load_n<V>(x + i, std::min<ptrdiff_t>(V::N, n - i), 0);
  return reduce_add((s0 + s1) + (s2 + s3));
}

template <class V>
void copy_row(const typename V::T* x, typename V::T* y, ptrdiff_t n, bool stream) {
  write_row<V>(y, n, stream,
               [&](ptrdiff_t i, ptrdiff_t count) { return load_n<V>(x + i, count, 0); });
}

}  // namespace logitkit::LOGITKIT_ISA_NS

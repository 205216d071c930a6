// Reductions along an axis that is not the contiguous one: x is a block of `width`
// contiguous columns, its n rows `x_stride` elements apart, and each column is reduced on its
// own. The vectors run across columns (lane j is column j), so every load is a contiguous one
// and no transpose is needed. Per column the arithmetic is that of the row kernels: the max,
// the exponentials (split into the entries at the max and the rest where the log of the sum
// is taken; softmax sums them whole), summed in double, and the same finishing. A column's
// result does not depend on its lane or on the block it is in. Compiled per ISA inside
// LOGITKIT_ISA_NS.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <type_traits>

#include "rows.h"

namespace logitkit::LOGITKIT_ISA_NS {

// Every sweep walks the rows in order and, within a row, the whole block of columns, so that
// the reads are those of a contiguous array (a row of the block is often thousands of bytes)
// and the prefetchers and the page walks see one stream per row. Per-column accumulators live
// in small arrays (ColumnArrays), loaded and stored once per group of kRowGroup rows: the
// terms of a group are added in T before being widened, as the row kernels add four vectors.
constexpr ptrdiff_t kRowGroup = 4;

// Column j's entries, one after another, into col[0, n).
template <class T>
inline void gather_column(const T* x, ptrdiff_t x_stride, ptrdiff_t n, ptrdiff_t j, T* col) {
  for (ptrdiff_t c = 0; c < n; ++c) col[c] = x[c * x_stride + j];
}

// Per-column arrays for one kernel call, carved from the call's workspace. Each holds
// `width` values rounded up to whole vectors of any ISA (16 lanes), so the kernels' padding
// lanes have somewhere to go; values are uninitialised unless zeroed. A call takes at most
// kMaxArrays of them (the cross-entropy takes 14; scratch_bytes in table.h counts 16); one
// more is a defect in the kernels, which stops the process rather than write past the block.
class ColumnArrays {
 public:
  static constexpr int kMaxArrays = 16;

  ColumnArrays(ptrdiff_t width, Workspace& ws) : padded_((width + 15) / 16 * 16) {
    next_ = take_scratch<unsigned char>(ws, padded_ * kSlotBytes * kMaxArrays);
    end_ = next_ + padded_ * kSlotBytes * kMaxArrays;
  }
  ColumnArrays(const ColumnArrays&) = delete;
  ColumnArrays& operator=(const ColumnArrays&) = delete;

  template <class U>
  U* take() {
    static_assert(sizeof(U) <= kSlotBytes);
    if (next_ + padded_ * kSlotBytes > end_) std::abort();
    U* p = reinterpret_cast<U*>(next_);
    next_ += padded_ * kSlotBytes;
    return p;
  }
  template <class U>
  U* take_zeroed() {
    U* p = take<U>();
    std::fill(p, p + padded_, U());
    return p;
  }

 private:
  static constexpr ptrdiff_t kSlotBytes = 8;
  ptrdiff_t padded_;
  unsigned char* next_;
  unsigned char* end_;
};

// Adds the lanes of x to acc[0, V::N) in double.
template <class VD, class V>
inline void add_wide(double* acc, V x) {
  constexpr bool kTwoHalves = 2 * VD::N == V::N;
  VD a0 = VD::load(acc);
  VD a1 = kTwoHalves ? VD::load(acc + VD::N) : VD::zero();
  accumulate_wide(a0, a1, x);
  a0.store(acc);
  if (kTwoHalves) a1.store(acc + VD::N);
}

// Calls fn(offset, lanes) for each vector of a row of `width` columns, the last one partial.
template <class V, class Fn>
inline void for_strips(ptrdiff_t width, Fn&& fn) {
  ptrdiff_t j = 0;
  for (; j + V::N <= width; j += V::N) fn(j, ptrdiff_t(V::N));
  if (j < width) fn(j, width - j);
}

// A column reduction that sums nothing beyond the exponentials.
struct NoColumnExtra {
  static constexpr bool kActive = false;
  template <class V>
  V operator()(V, V, V) const {
    return V::zero();
  }
};

// The statistics of a block of columns, entry j for column j: its max (+-inf as the column
// has it; for a column holding a NaN, NaN or a value whose sums then come out NaN), its sums
// split as in RowStats, and the sum of an extra term when the
// reduction has one. Where the max is not finite, and in the padding after the last column,
// the sums read at_max 1 and rest 0: harmless values for the vector arithmetic, while the
// caller takes the special path for such columns.
template <class V>
struct ColumnStats {
  typename V::T* max;
  typename V::T* sweep_max;  // max where it is finite, else 0: what the sums were taken from
  double* at_max;
  double* rest;
  double* extra;

  bool finite(ptrdiff_t j) const { return std::isfinite(max[j]); }
  double sum(ptrdiff_t j) const { return at_max[j] + rest[j]; }
};

// The running max of each of the `width` adjacent columns starting at x, into m (which
// also gets -inf in the padding lanes of the last vector). The max of a column holding a
// NaN may or may not be NaN; with `nans`, nans[j] counts column j's NaNs.
template <class V>
void column_max(const typename V::T* x, ptrdiff_t x_stride, ptrdiff_t n, ptrdiff_t width,
                typename V::T* m, typename V::T* nans = nullptr) {
  using T = typename V::T;
  constexpr T ninf = -std::numeric_limits<T>::infinity();
  const ptrdiff_t lanes_total = (width + V::N - 1) / V::N * V::N;
  std::fill(m, m + lanes_total, ninf);
  if (nans) std::fill(nans, nans + lanes_total, T(0));
  const V zero = V::zero(), one = V::set1(T(1));
  auto group = [&](ptrdiff_t c0, auto rows) {
    const T* r = x + c0 * x_stride;
    for_strips<V>(width, [&](ptrdiff_t j, ptrdiff_t lanes) {
      auto at = [&](ptrdiff_t k) { return load_n<V>(r + k * x_stride + j, lanes, ninf); };
      V v = at(0), count = zero;
      for (ptrdiff_t k = 1; k < ptrdiff_t(rows); ++k) v = max_(v, at(k));
      max_(V::load(m + j), v).store(m + j);
      if (!nans) return;
      for (ptrdiff_t k = 0; k < ptrdiff_t(rows); ++k) {
        const V xv = at(k);
        count = count + select(eq(xv, xv), zero, one);
      }
      (V::load(nans + j) + count).store(nans + j);
    });
  };
  ptrdiff_t c = 0;
  for (; c + kRowGroup <= n; c += kRowGroup) {
    group(c, std::integral_constant<ptrdiff_t, kRowGroup>());
  }
  if (c < n) group(c, n - c);
}

// Statistics whose arrays come from `arrays`; the extra sums only with `extra`.
template <class V>
ColumnStats<V> take_column_stats(ColumnArrays& arrays, bool extra) {
  using T = typename V::T;
  return {arrays.take<T>(), arrays.take<T>(), arrays.take<double>(), arrays.take<double>(),
          extra ? arrays.take<double>() : nullptr};
}

// Whether the first `width` entries of m are all finite (the common case, which lets the
// per-column loops skip their special cases).
template <class V>
bool all_finite(const typename V::T* m, ptrdiff_t width) {
  const V inf = V::set1(std::numeric_limits<typename V::T>::infinity());
  ptrdiff_t j = 0;
  for (; j + V::N <= width; j += V::N) {
    if (!all_(lt(abs_(V::load(m + j)), inf))) return false;
  }
  for (; j < width; ++j) {
    if (!std::isfinite(m[j])) return false;
  }
  return true;
}

// The sums of st for the columns whose max column_max has left in st.max. extra(x, max, e)
// gives, for every entry with its e = exp(x - max) (0 for padding lanes), a term whose column
// sums land in st.extra. With y each e is stored at its place in y (y_stride apart),
// compensated as softmax stores it; y may be x. Where keep[j] is 1 (keep: null or one entry
// per column), column j of y gets x instead: with y = x, the caller's special columns stay
// intact for it to read afterwards (without keep they get meaningless values there). Without
// split_max (softmax, which needs only the sum) the entries at the max are not kept apart:
// at_max is 0 and rest the whole sum. `compensated` sums compensated exponentials even
// without y.
template <class V, class VD, class Extra = NoColumnExtra>
void column_sums(const typename V::T* x, ptrdiff_t x_stride, ptrdiff_t n, ptrdiff_t width,
                 ColumnArrays& arrays, const ColumnStats<V>& st, Extra&& extra = {},
                 typename V::T* y = nullptr, ptrdiff_t y_stride = 0, bool split_max = true,
                 bool compensated = false, const typename V::T* keep = nullptr) {
  using T = typename V::T;
  constexpr T ninf = -std::numeric_limits<T>::infinity();
  constexpr bool kExtra = std::decay_t<Extra>::kActive;
  const ptrdiff_t lanes_total = (width + V::N - 1) / V::N * V::N;
  const T* m = st.max;
  // A column whose max is not finite follows the special rules (its caller's job); its lanes
  // sweep with a max of 0 meanwhile, so that the vector arithmetic stays well defined.
  T* sweep_max = st.sweep_max;
  // Entries at the max: counted in T per group of rows, and moved into st.at_max (double)
  // every kCountFlushRows rows, since a float count stops at 2^24.
  T* count = arrays.take<T>();
  const V zero = V::zero(), one = V::set1(T(1));
  const V inf = V::set1(std::numeric_limits<T>::infinity());
  for (ptrdiff_t j = 0; j < lanes_total; j += V::N) {
    const V mv = V::load(m + j);
    select(lt(abs_(mv), inf), mv, zero).store(sweep_max + j);
    zero.store(count + j);
  }
  std::fill(st.at_max, st.at_max + lanes_total, 0.0);
  std::fill(st.rest, st.rest + lanes_total, 0.0);
  auto flush_counts = [&] {
    for (ptrdiff_t j = 0; j < lanes_total; ++j) {
      st.at_max[j] += double(count[j]);
      count[j] = T(0);
    }
  };
  if (kExtra) std::fill(st.extra, st.extra + lanes_total, 0.0);
  // The sweep, compiled once per combination of its options (they are fixed for a call,
  // and tested per entry they would cost a branch each in the innermost loop).
  auto sweep = [&](auto store, auto split, auto compensate, auto keeping) {
    // The `rows` (<= kRowGroup) rows from c0 on, as one group.
    auto sum_rows = [&](ptrdiff_t c0, auto rows) {
      const T* r = x + c0 * x_stride;
      for_strips<V>(width, [&](ptrdiff_t j, ptrdiff_t lanes) {
        const V mv = V::load(sweep_max + j);
        V cnt = V::load(count + j), rest = zero, more = zero;
        [[maybe_unused]] typename V::Mask kept;
        if constexpr (keeping) kept = eq(V::load(keep + j), one);
        for (ptrdiff_t k = 0; k < ptrdiff_t(rows); ++k) {
          const V xv = load_n<V>(r + k * x_stride + j, lanes, ninf);
          V e;
          if constexpr (compensate) {
            e = exp_diff(xv, mv, zero - mv);
          } else {
            e = exp_sum_term_(xv - mv);
          }
          if constexpr (store) {
            V stored = e;
            if constexpr (keeping) stored = select(kept, xv, e);
            store_n(y + (c0 + k) * y_stride + j, lanes, stored);
          }
          if constexpr (kExtra) more = more + extra(xv, mv, e);
          if constexpr (split) {
            const auto at_max = eq(xv, mv);
            cnt = cnt + select(at_max, one, zero);
            rest = rest + select(at_max, zero, e);
          } else {
            rest = rest + e;
          }
        }
        if constexpr (split) cnt.store(count + j);
        add_wide<VD>(st.rest + j, rest);
        if constexpr (kExtra) add_wide<VD>(st.extra + j, more);
      });
    };
    constexpr ptrdiff_t kCountFlushRows = ptrdiff_t(1) << 20;
    static_assert(kCountFlushRows % kRowGroup == 0, "flushes fall between row groups");
    ptrdiff_t c = 0;
    for (; c + kRowGroup <= n; c += kRowGroup) {
      sum_rows(c, std::integral_constant<ptrdiff_t, kRowGroup>());
      if constexpr (split) {
        if ((c + kRowGroup) % kCountFlushRows == 0) flush_counts();
      }
    }
    if (c < n) sum_rows(c, n - c);
  };
  using Yes = std::true_type;
  using No = std::false_type;
  if (y && keep) {
    // Stored exponentials are always compensated.
    split_max ? sweep(Yes(), Yes(), Yes(), Yes()) : sweep(Yes(), No(), Yes(), Yes());
  } else if (y) {
    split_max ? sweep(Yes(), Yes(), Yes(), No()) : sweep(Yes(), No(), Yes(), No());
  } else {
    compensated ? sweep(No(), Yes(), Yes(), No()) : sweep(No(), Yes(), No(), No());
  }
  flush_counts();
  const bool clean = all_finite<V>(m, width);
  for (ptrdiff_t j = clean ? width : 0; j < lanes_total; ++j) {
    if (j < width && std::isfinite(m[j])) continue;
    st.at_max[j] = 1.0;
    st.rest[j] = 0.0;
  }
}

// The statistics of the `width` adjacent columns starting at x, in arrays taken from
// `arrays` (extra as in column_sums).
template <class V, class VD, class Extra = NoColumnExtra>
ColumnStats<V> column_stats(const typename V::T* x, ptrdiff_t x_stride, ptrdiff_t n,
                            ptrdiff_t width, ColumnArrays& arrays, Extra&& extra = {}) {
  const ColumnStats<V> st = take_column_stats<V>(arrays, std::decay_t<Extra>::kActive);
  column_max<V>(x, x_stride, n, width, st.max);
  column_sums<V, VD>(x, x_stride, n, width, arrays, st, extra);
  return st;
}

// log(at_max + rest) of each of `width` columns into log_sum (whole vectors: ColumnArrays
// pads it), as log(at_max) + log1p(rest / at_max) in double vectors. These paths finish a
// row every few dozen elements, where the scalar log1p of the row kernels would cost as much
// as all the exponentials. Double keeps a logsumexp near 0, where the max and log(sum)
// cancel, exact to the last bit of T; and it measured faster than float vectors, which have
// to be filled lane by lane from the double sums (`python -m logitkit bench --ops
// logsumexp,log_softmax --shapes 262144x10,4096x1000:axis0`). at_max is nearly always one entry, whose
// log (0) is skipped. Columns whose max is not finite get 0 (their caller redoes them).
template <class V, class VD>
void column_log_sums(const ColumnStats<V>& sums, ptrdiff_t width, double* log_sum) {
  for (ptrdiff_t j0 = 0; j0 < width; j0 += VD::N) {
    bool single = true;
    for (ptrdiff_t j = 0; j < VD::N; ++j) single = single && sums.at_max[j0 + j] == 1.0;
    const VD a = VD::load(sums.at_max + j0), r = VD::load(sums.rest + j0);
    (single ? log1p_(r) : log1p_(r / a) + log_(a)).store(log_sum + j0);
  }
}

// y = (x - m) - log_sum, compensated, over `width` columns with per-column m and log_sum
// (arrays padded to whole vectors): log_softmax's output sweep. y may be x. Padding lanes
// compute on 0 and are not stored.
template <class V>
void column_sub_shift(const typename V::T* x, ptrdiff_t x_stride, typename V::T* y,
                      ptrdiff_t y_stride, ptrdiff_t n, ptrdiff_t width, const typename V::T* m,
                      const typename V::T* log_sum) {
  for (ptrdiff_t c = 0; c < n; ++c) {
    const auto* row = x + c * x_stride;
    auto* out = y + c * y_stride;
    for_strips<V>(width, [&](ptrdiff_t j, ptrdiff_t lanes) {
      const V mv = V::load(m + j);
      const V v = sub_shift_exact(load_n<V>(row + j, lanes, 0), mv, V::zero() - mv,
                                  V::load(log_sum + j));
      store_n(out + j, lanes, v);
    });
  }
}

// Whether V transposes in registers and loads and stores row tails with masks: then rows of
// fewer than V::N entries are transposed a vector per row (transpose_short_rows).
template <class V, class = void>
struct transposes_in_registers : std::false_type {};
template <class V>
struct transposes_in_registers<V, std::void_t<decltype(V::kTransposesInRegisters)>>
    : std::bool_constant<V::kTransposesInRegisters && has_masked_tail<V, typename V::T>::value> {};

// The fewest entries a row needs for transpose_short_rows.
template <class V>
constexpr ptrdiff_t transpose_min_entries() {
  return transposes_in_registers<V>::value ? 1 : V::N;
}

// Between `count` rows of n >= transpose_min_entries<V>() entries, `step` elements apart,
// and the columns of `block` (entry c of row r at block[c * count + r]), for the short-row
// paths. V::N rows at a time are read as whole vectors and transposed in registers; where n
// is not a multiple of V::N, a row's last vector ends at the row's end and overlaps the one
// before it, whose entries it writes again with the same values, and a row shorter than a
// vector is read and written with masks. The rows left over go one entry at a time.
// On AVX-512 (the register transpose of simd/avx512.h) rows of 10 float32 entries went from
// one entry at a time to a masked vector each: over 262144x10, 2 threads, medians of 50
// calls, softmax 1.39 -> 1.01 ms, log_softmax 1.51 -> 1.13 ms, logsumexp 1.13 -> 0.92 ms, the
// loss 1.99 -> 1.76 ms (`python -m logitkit bench --shapes 262144x10` sets them beside
// PyTorch and JAX).
template <class V, bool kToColumns>
void transpose_short_rows(typename V::T* rows, ptrdiff_t step, ptrdiff_t count, ptrdiff_t n,
                          typename V::T* block) {
  constexpr int N = V::N;
  ptrdiff_t r = 0;
  for (; r + N <= count; r += N) {
    if (n < N) {
      V t[N];
      if (kToColumns) {
        for (int i = 0; i < N; ++i) t[i] = load_n<V>(rows + (r + i) * step, n, 0);
        transpose(t);
        for (ptrdiff_t c = 0; c < n; ++c) t[c].store(block + c * count + r);
      } else {
        for (int c = 0; c < N; ++c) t[c] = c < n ? V::load(block + c * count + r) : V::zero();
        transpose(t);
        for (int i = 0; i < N; ++i) store_n(rows + (r + i) * step, n, t[i]);
      }
      continue;
    }
    for (ptrdiff_t c0 = 0; c0 < n; c0 += N) {
      const ptrdiff_t c = std::min(c0, n - N);
      V t[N];
      for (int i = 0; i < N; ++i) {
        t[i] = V::load(kToColumns ? rows + (r + i) * step + c : block + (c + i) * count + r);
      }
      transpose(t);
      for (int i = 0; i < N; ++i) {
        t[i].store(kToColumns ? block + (c + i) * count + r : rows + (r + i) * step + c);
      }
    }
  }
  for (; r < count; ++r) {
    for (ptrdiff_t c = 0; c < n; ++c) {
      if (kToColumns) {
        block[c * count + r] = rows[r * step + c];
      } else {
        rows[r * step + c] = block[c * count + r];
      }
    }
  }
}

template <class V>
void rows_to_columns(const typename V::T* rows, ptrdiff_t step, ptrdiff_t count, ptrdiff_t n,
                     typename V::T* block) {
  transpose_short_rows<V, true>(const_cast<typename V::T*>(rows), step, count, n, block);
}

template <class V>
void columns_to_rows(const typename V::T* block, typename V::T* rows, ptrdiff_t step,
                     ptrdiff_t count, ptrdiff_t n) {
  transpose_short_rows<V, false>(rows, step, count, n, const_cast<typename V::T*>(block));
}

// The columns among the first `width` whose statistics are not finite, into cols; returns
// how many there are.
template <class V>
ptrdiff_t special_columns(const ColumnStats<V>& st, ptrdiff_t width, ptrdiff_t* cols) {
  if (all_finite<V>(st.max, width)) return 0;
  ptrdiff_t count = 0;
  for (ptrdiff_t j = 0; j < width; ++j) {
    if (!st.finite(j)) cols[count++] = j;
  }
  return count;
}

// y *= factor over `width` columns with per-column factors (padded to whole vectors).
template <class V>
void column_scale(typename V::T* y, ptrdiff_t y_stride, ptrdiff_t n, ptrdiff_t width,
                  const typename V::T* factor) {
  for (ptrdiff_t c = 0; c < n; ++c) {
    auto* row = y + c * y_stride;
    for_strips<V>(width, [&](ptrdiff_t j, ptrdiff_t lanes) {
      store_n(row + j, lanes, load_n<V>(row + j, lanes, 0) * V::load(factor + j));
    });
  }
}

// 1 for the columns in special[0, specials), 0 for the others (and the padding).
template <class T>
T* special_lanes(ColumnArrays& arrays, const ptrdiff_t* special, ptrdiff_t specials) {
  T* lanes = arrays.take_zeroed<T>();
  for (ptrdiff_t k = 0; k < specials; ++k) lanes[special[k]] = T(1);
  return lanes;
}

// softmax (or log_softmax) of each of the `width` columns of x into y. softmax stores the
// exponentials as it sums them and scales them in place, one exp per entry; log_softmax
// needs no exp in its output sweep. Columns whose max is not finite follow the row rules
// at the end, read from x: with y = x the sweeps leave them as they were (softmax keeps x
// in them, and scales by 1; log_softmax subtracts 0 from them).
template <class V, class VD>
void softmax_columns(const typename V::T* x, ptrdiff_t x_stride, typename V::T* y,
                     ptrdiff_t y_stride, ptrdiff_t n, ptrdiff_t width, bool log, Workspace ws) {
  using T = typename V::T;
  ColumnArrays arrays(width, ws);
  const ColumnStats<V> st = take_column_stats<V>(arrays, false);
  column_max<V>(x, x_stride, n, width, st.max);
  ptrdiff_t* special = arrays.take<ptrdiff_t>();
  const ptrdiff_t specials = special_columns(st, width, special);
  T* factor = arrays.take_zeroed<T>();
  if (log) {
    column_sums<V, VD>(x, x_stride, n, width, arrays, st);
    double* log_sum = arrays.take<double>();
    column_log_sums<V, VD>(st, width, log_sum);
    // The special columns have a max of 0 and a log_sum of 0 here.
    for (ptrdiff_t j = 0; j < width; ++j) factor[j] = T(log_sum[j]);
    column_sub_shift<V>(x, x_stride, y, y_stride, n, width, st.sweep_max, factor);
  } else {
    const T* keep = specials && y == x ? special_lanes<T>(arrays, special, specials) : nullptr;
    column_sums<V, VD>(x, x_stride, n, width, arrays, st, NoColumnExtra(), y, y_stride, false,
                       false, keep);
    for (ptrdiff_t j = 0; j < width; ++j) factor[j] = T(1.0 / st.sum(j));  // 1 where special
    column_scale<V>(y, y_stride, n, width, factor);
  }
  if (specials == 0) return;
  T* col = take_scratch<T>(ws, 2 * n);
  for (ptrdiff_t k = 0; k < specials; ++k) {
    gather_column(x, x_stride, n, special[k], col);
    softmax_special_row(col, col + n, n, log);
    for (ptrdiff_t c = 0; c < n; ++c) y[c * y_stride + special[k]] = col[n + c];
  }
}

// logsumexp of each of the `width` columns of x into out[0, width).
template <class V, class VD>
void logsumexp_columns(const typename V::T* x, ptrdiff_t x_stride, typename V::T* out,
                       ptrdiff_t n, ptrdiff_t width, Workspace ws) {
  using T = typename V::T;
  ColumnArrays arrays(width, ws);
  const ColumnStats<V> st = column_stats<V, VD>(x, x_stride, n, width, arrays);
  double* log_sum = arrays.take<double>();
  column_log_sums<V, VD>(st, width, log_sum);
  for (ptrdiff_t j = 0; j < width; ++j) {
    if (st.finite(j)) {
      out[j] = T(double(st.max[j]) + log_sum[j]);
      continue;
    }
    Workspace left = ws;  // the same n entries for every special column
    T* col = take_scratch<T>(left, n);
    gather_column(x, x_stride, n, j, col);
    const LseResult r = logsumexp_special_row<T>(col, nullptr, n);
    out[j] = T(r.sign < 0 ? std::numeric_limits<double>::quiet_NaN() : r.value);
  }
}

}  // namespace logitkit::LOGITKIT_ISA_NS

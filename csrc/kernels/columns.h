// Reductions along an axis that is not the contiguous one: x is a block of `width`
// contiguous columns, its n rows `x_stride` elements apart, and each column is reduced on its
// own. The vectors run across columns (lane j is column j), so every load is a contiguous one
// and no transpose is needed. Per column the arithmetic is that of the row kernels: the max,
// the exponentials split into the entries at the max and the rest (summed in double), and the
// same finishing. Compiled per ISA inside LOGITKIT_ISA_NS.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>

#include "rows.h"

namespace logitkit::LOGITKIT_ISA_NS {

// Columns are taken kStrips vectors at a time, and every sweep walks the rows in order, so
// that each row's segment of the block (up to 8 vectors: 4 cache lines of float) is read
// whole, and the block's 8 x n values stay in cache between the sweeps.
constexpr int kStrips = 8;

// Column j's entries, one after another, into col[0, n).
template <class T>
inline void gather_column(const T* x, ptrdiff_t x_stride, ptrdiff_t n, ptrdiff_t j, T* col) {
  for (ptrdiff_t c = 0; c < n; ++c) col[c] = x[c * x_stride + j];
}

template <class V>
inline ptrdiff_t strip_lanes(ptrdiff_t width, int strip) {
  return std::min<ptrdiff_t>(V::N, width - ptrdiff_t(strip) * V::N);
}

// A column reduction that needs nothing beyond the statistics.
struct NoColumnExtra {
  template <class V>
  void operator()(int, V, V, V) const {}
};

// The statistics of a block of columns, lane j for column j: its max (NaN or +-inf as the
// column has it), and its sums split as in RowStats, as flat arrays for the vector finish
// (column_log_sums). Where the max is not finite, or there is no column, the sums read
// at_max 1 and rest 0: harmless values for the vector arithmetic, while the caller takes the
// special path for such columns.
template <class V>
struct ColumnStats {
  alignas(64) typename V::T max[kStrips * V::N];
  alignas(64) double at_max[kStrips * V::N];
  alignas(64) double rest[kStrips * V::N];

  bool finite(ptrdiff_t j) const { return std::isfinite(max[j]); }
  double sum(ptrdiff_t j) const { return at_max[j] + rest[j]; }
};

// The statistics of `width` (<= kStrips * V::N) adjacent columns starting at x.
// extra(strip, x, max, e) sees every entry of the second sweep with its e = exp(x - max)
// (0 for padding lanes), for reductions that accumulate more than the sum.
template <class V, class VD, class Extra = NoColumnExtra>
void column_stats(const typename V::T* x, ptrdiff_t x_stride, ptrdiff_t n, ptrdiff_t width,
                  ColumnStats<V>& st, Extra&& extra = {}) {
  using T = typename V::T;
  constexpr T ninf = -std::numeric_limits<T>::infinity();
  const int strips = static_cast<int>((width + V::N - 1) / V::N);
  V m[kStrips];
  for (int s = 0; s < strips; ++s) m[s] = V::set1(ninf);
  for (ptrdiff_t c = 0; c < n; ++c) {
    const T* row = x + c * x_stride;
    for (int s = 0; s < strips; ++s) {
      m[s] = max_(m[s], load_n<V>(row + s * V::N, strip_lanes<V>(width, s), ninf));
    }
  }
  alignas(64) T sweep_max[kStrips * V::N];
  for (int s = 0; s < strips; ++s) m[s].store(st.max + s * V::N);
  for (int j = strips * V::N; j < kStrips * V::N; ++j) st.max[j] = ninf;
  // A column whose max is not finite follows the special rules (its caller's job); its lane
  // sweeps with a max of 0 meanwhile, so that the vector arithmetic stays well defined.
  for (int j = 0; j < strips * V::N; ++j) {
    sweep_max[j] = std::isfinite(st.max[j]) ? st.max[j] : T(0);
  }
  for (int s = 0; s < strips; ++s) m[s] = V::load(sweep_max + s * V::N);
  const V zero = V::zero(), one = V::set1(T(1));
  WideSum<VD> rest[kStrips];  // accumulate_wide keeps lane j of the input in lane j of (a0, a1)
  V count[kStrips];
  for (int s = 0; s < strips; ++s) count[s] = zero;
  for (ptrdiff_t c = 0; c < n; ++c) {
    const T* row = x + c * x_stride;
    for (int s = 0; s < strips; ++s) {
      const V xv = load_n<V>(row + s * V::N, strip_lanes<V>(width, s), ninf);
      const auto at_max = eq(xv, m[s]);
      const V e = exp_sum_term_(xv - m[s]);
      count[s] = count[s] + select(at_max, one, zero);
      rest[s].add(select(at_max, zero, e));
      extra(s, xv, m[s], e);
    }
  }
  alignas(64) T count_lanes[V::N];
  alignas(64) double rest_lanes[2 * V::N];
  for (int s = 0; s < strips; ++s) {
    count[s].store(count_lanes);
    rest[s].a0.store(rest_lanes);
    rest[s].a1.store(rest_lanes + VD::N);
    for (ptrdiff_t j = 0; j < V::N; ++j) {
      const bool live = st.finite(s * V::N + j);  // padding lanes hold -inf
      st.at_max[s * V::N + j] = live ? double(count_lanes[j]) : 1.0;
      st.rest[s * V::N + j] = live ? rest_lanes[j] : 0.0;
    }
  }
  for (ptrdiff_t j = strips * V::N; j < kStrips * V::N; ++j) {
    st.at_max[j] = 1.0;
    st.rest[j] = 0.0;
  }
}

// log(at_max + rest) of each of `width` columns, as log(at_max) + log1p(rest / at_max) in
// vectors of W (double or the kernel's own type): these paths finish a row every few dozen
// elements, where the scalar log1p of the row kernels would cost as much as all the
// exponentials. at_max is nearly always one entry, whose log (0) is skipped. Columns whose
// max is not finite get 0 (their caller redoes them).
template <class W, class V>
void column_log_sums_in(const ColumnStats<V>& sums, ptrdiff_t width, double* log_sum) {
  using L = typename W::T;
  for (ptrdiff_t j0 = 0; j0 < width; j0 += W::N) {
    bool single = true;
    for (ptrdiff_t j = 0; j < W::N; ++j) single = single && sums.at_max[j0 + j] == 1.0;
    W value;
    if constexpr (std::is_same_v<L, double>) {
      const W a = W::load(sums.at_max + j0), r = W::load(sums.rest + j0);
      value = single ? log1p_(r) : log1p_(r / a) + log_(a);
    } else {
      alignas(64) L ratio[W::N], at_max[W::N];
      for (ptrdiff_t j = 0; j < W::N; ++j) {
        at_max[j] = L(sums.at_max[j0 + j]);
        ratio[j] = L(single ? sums.rest[j0 + j] : sums.rest[j0 + j] / sums.at_max[j0 + j]);
      }
      value = log1p_(W::load(ratio));
      if (!single) value = value + log_(W::load(at_max));
    }
    alignas(64) L lanes[W::N];
    value.store(lanes);
    for (ptrdiff_t j = 0; j < W::N && j0 + j < width; ++j) log_sum[j0 + j] = double(lanes[j]);
  }
}

// `cancels`: the caller adds log(sum) to the max, and a logsumexp near 0 cancels the two, so
// log(sum) is formed in double. Elsewhere (log_softmax, entropy, the loss) it meets terms of
// its own sign and is rounded to T anyway: T's vectors, twice as wide, suffice.
template <class V, class VD>
void column_log_sums(const ColumnStats<V>& sums, ptrdiff_t width, double* log_sum, bool cancels) {
  if (cancels) {
    column_log_sums_in<VD>(sums, width, log_sum);
  } else {
    column_log_sums_in<V>(sums, width, log_sum);
  }
}

// y = exp(x - m) * factor (log: (x - m) - factor, compensated) over `width` (<= kStrips *
// V::N) columns with per-column m and factor; y may be x. Padding lanes compute on 0 and are
// not stored.
template <class V>
void column_sweep(const typename V::T* x, ptrdiff_t x_stride, typename V::T* y,
                  ptrdiff_t y_stride, ptrdiff_t n, ptrdiff_t width, const typename V::T* m,
                  const typename V::T* factor, bool log) {
  const int strips = static_cast<int>((width + V::N - 1) / V::N);
  V mv[kStrips], neg_m[kStrips], f[kStrips];
  for (int s = 0; s < strips; ++s) {
    mv[s] = V::load(m + s * V::N);
    neg_m[s] = V::zero() - mv[s];
    f[s] = V::load(factor + s * V::N);
  }
  for (ptrdiff_t c = 0; c < n; ++c) {
    const auto* row = x + c * x_stride;
    auto* out = y + c * y_stride;
    for (int s = 0; s < strips; ++s) {
      const ptrdiff_t lanes = strip_lanes<V>(width, s);
      const V xv = load_n<V>(row + s * V::N, lanes, 0);
      const V v = log ? sub_shift_exact(xv, mv[s], neg_m[s], f[s])
                      : exp_diff(xv, mv[s], neg_m[s]) * f[s];
      if (lanes == V::N) {
        v.store(out + s * V::N);
      } else {
        store_partial(out + s * V::N, lanes, v);
      }
    }
  }
}

// softmax (or log_softmax) of each of the `width` columns of x into y.
template <class V, class VD>
void softmax_columns(const typename V::T* x, ptrdiff_t x_stride, typename V::T* y,
                     ptrdiff_t y_stride, ptrdiff_t n, ptrdiff_t width, bool log) {
  using T = typename V::T;
  constexpr ptrdiff_t kBlock = kStrips * V::N;
  for (ptrdiff_t j0 = 0; j0 < width; j0 += kBlock) {
    const ptrdiff_t w = std::min(kBlock, width - j0);
    const T* xs = x + j0;
    T* ys = y + j0;
    ColumnStats<V> st;
    column_stats<V, VD>(xs, x_stride, n, w, st);
    double log_sum[kBlock];
    if (log) column_log_sums<V, VD>(st, w, log_sum, false);
    alignas(64) T m[kBlock] = {}, factor[kBlock] = {};
    bool special = false;
    for (ptrdiff_t j = 0; j < w; ++j) {
      if (!st.finite(j)) {  // redone below; harmless values meanwhile
        special = true;
        continue;
      }
      m[j] = st.max[j];
      factor[j] = log ? T(log_sum[j]) : T(1.0 / st.sum(j));
    }
    // Columns whose max is not finite get the row rules from a copy taken now: with y = x
    // the sweep below overwrites them first.
    T* saved = special ? row_scratch<T>((w + 1) * n) : nullptr;
    if (special) {
      for (ptrdiff_t j = 0; j < w; ++j) {
        if (st.finite(j)) continue;
        gather_column(xs, x_stride, n, j, saved + j * n);
      }
    }
    column_sweep<V>(xs, x_stride, ys, y_stride, n, w, m, factor, log);
    if (special) {
      T* col = saved + w * n;
      for (ptrdiff_t j = 0; j < w; ++j) {
        if (st.finite(j)) continue;
        softmax_special_row(saved + j * n, col, n, log);
        for (ptrdiff_t c = 0; c < n; ++c) ys[c * y_stride + j] = col[c];
      }
    }
  }
}

// logsumexp of each of the `width` columns of x into out[0, width).
template <class V, class VD>
void logsumexp_columns(const typename V::T* x, ptrdiff_t x_stride, typename V::T* out,
                       ptrdiff_t n, ptrdiff_t width) {
  using T = typename V::T;
  constexpr ptrdiff_t kBlock = kStrips * V::N;
  for (ptrdiff_t j0 = 0; j0 < width; j0 += kBlock) {
    const ptrdiff_t w = std::min(kBlock, width - j0);
    ColumnStats<V> st;
    column_stats<V, VD>(x + j0, x_stride, n, w, st);
    double log_sum[kBlock];
    column_log_sums<V, VD>(st, w, log_sum, true);
    for (ptrdiff_t j = 0; j < w; ++j) {
      if (st.finite(j)) {
        out[j0 + j] = T(double(st.max[j]) + log_sum[j]);
        continue;
      }
      T* col = row_scratch<T>(n);
      gather_column(x + j0, x_stride, n, j, col);
      const LseResult r = logsumexp_special_row<T>(col, nullptr, n);
      out[j0 + j] = T(r.sign < 0 ? std::numeric_limits<double>::quiet_NaN() : r.value);
    }
  }
}

}  // namespace logitkit::LOGITKIT_ISA_NS

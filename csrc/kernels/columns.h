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

#include "rows.h"

namespace logitkit::LOGITKIT_ISA_NS {

// The statistics of `lanes` (<= V::N) adjacent columns starting at x; a column whose max is
// not finite gets max = that value and no sums (the caller takes the special path for it).
template <class V, class VD>
void column_stats(const typename V::T* x, ptrdiff_t x_stride, ptrdiff_t n, ptrdiff_t lanes,
                  RowStats<typename V::T>* stats) {
  using T = typename V::T;
  constexpr T ninf = -std::numeric_limits<T>::infinity();
  V m = V::set1(ninf);
  for (ptrdiff_t c = 0; c < n; ++c) m = max_(m, load_n<V>(x + c * x_stride, lanes, ninf));
  alignas(64) T max_lanes[V::N], sweep_max[V::N];
  m.store(max_lanes);
  // A column whose max is not finite follows the special rules (its caller's job); its lane
  // sweeps with a max of 0 meanwhile, so that the vector arithmetic stays well defined.
  for (int j = 0; j < V::N; ++j) sweep_max[j] = std::isfinite(max_lanes[j]) ? max_lanes[j] : T(0);
  m = V::load(sweep_max);
  const V zero = V::zero(), one = V::set1(T(1));
  WideSum<VD> rest;  // accumulate_wide keeps lane j of the input in lane j of (a0, a1)
  V count = zero;
  for (ptrdiff_t c = 0; c < n; ++c) {
    const V xv = load_n<V>(x + c * x_stride, lanes, ninf);
    const auto at_max = eq(xv, m);
    count = count + select(at_max, one, zero);
    rest.add(select(at_max, zero, exp_sum_term_(xv - m)));
  }
  alignas(64) T count_lanes[V::N];
  alignas(64) double rest_lanes[2 * V::N];
  count.store(count_lanes);
  rest.a0.store(rest_lanes);
  rest.a1.store(rest_lanes + VD::N);
  for (ptrdiff_t j = 0; j < lanes; ++j) {
    stats[j] = std::isfinite(max_lanes[j])
                   ? RowStats<T>{max_lanes[j], double(count_lanes[j]), rest_lanes[j]}
                   : RowStats<T>{max_lanes[j], 0.0, 0.0};
  }
}

// softmax (or log_softmax) of each of the `width` columns of x into y.
template <class V, class VD>
void softmax_columns(const typename V::T* x, ptrdiff_t x_stride, typename V::T* y,
                     ptrdiff_t y_stride, ptrdiff_t n, ptrdiff_t width, bool log) {
  using T = typename V::T;
  for (ptrdiff_t j0 = 0; j0 < width; j0 += V::N) {
    const ptrdiff_t lanes = std::min<ptrdiff_t>(V::N, width - j0);
    const T* xs = x + j0;
    T* ys = y + j0;
    RowStats<T> s[V::N];
    column_stats<V, VD>(xs, x_stride, n, lanes, s);
    alignas(64) T m[V::N] = {}, factor[V::N] = {};
    bool special = false;
    for (ptrdiff_t j = 0; j < lanes; ++j) {
      if (!std::isfinite(s[j].max)) {  // redone below; harmless values meanwhile
        special = true;
        continue;
      }
      m[j] = s[j].max;
      factor[j] = log ? T(log_abs_sum(s[j].at_max, s[j].rest).value)
                      : T(1.0 / (s[j].at_max + s[j].rest));
    }
    const V mv = V::load(m), neg_m = V::zero() - mv, f = V::load(factor);
    for (ptrdiff_t c = 0; c < n; ++c) {
      const V xv = load_n<V>(xs + c * x_stride, lanes, 0);
      const V v = log ? sub_shift_exact(xv, mv, neg_m, f) : exp_diff(xv, mv, neg_m) * f;
      if (lanes == V::N) {
        v.store(ys + c * y_stride);
      } else {
        store_partial(ys + c * y_stride, lanes, v);
      }
    }
    if (special) {
      // Columns whose max is not finite: gathered, given the row rules, scattered back.
      T* col = row_scratch<T>(2 * n);
      for (ptrdiff_t j = 0; j < lanes; ++j) {
        if (std::isfinite(s[j].max)) continue;
        for (ptrdiff_t c = 0; c < n; ++c) col[c] = xs[c * x_stride + j];
        softmax_special_row(col, col + n, n, log);
        for (ptrdiff_t c = 0; c < n; ++c) ys[c * y_stride + j] = col[n + c];
      }
    }
  }
}

// logsumexp of each of the `width` columns of x into out[0, width).
template <class V, class VD>
void logsumexp_columns(const typename V::T* x, ptrdiff_t x_stride, typename V::T* out,
                       ptrdiff_t n, ptrdiff_t width) {
  using T = typename V::T;
  for (ptrdiff_t j0 = 0; j0 < width; j0 += V::N) {
    const ptrdiff_t lanes = std::min<ptrdiff_t>(V::N, width - j0);
    RowStats<T> s[V::N];
    column_stats<V, VD>(x + j0, x_stride, n, lanes, s);
    for (ptrdiff_t j = 0; j < lanes; ++j) {
      if (std::isfinite(s[j].max)) {
        out[j0 + j] = T(finish_logsumexp(s[j]).value);
        continue;
      }
      T* col = row_scratch<T>(n);
      for (ptrdiff_t c = 0; c < n; ++c) col[c] = x[c * x_stride + j0 + j];
      const LseResult r = logsumexp_special_row<T>(col, nullptr, n);
      out[j0 + j] = T(r.sign < 0 ? std::numeric_limits<double>::quiet_NaN() : r.value);
    }
  }
}

}  // namespace logitkit::LOGITKIT_ISA_NS

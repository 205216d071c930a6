// Entropy and the plain cross-entropy along columns (see columns.h): lane j of every vector is
// column j, and each column is one row of the operation. Columns whose statistics are not
// finite are gathered and handed to the row kernels, which own the rules for special values.
// Compiled per ISA inside LOGITKIT_ISA_NS.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "columns.h"
#include "cross_entropy.h"

namespace logitkit::LOGITKIT_ISA_NS {

// The term entropy adds up beside the exponentials: e (m - x), which is 0 for entries far
// below the max (padding and -inf among them).
template <class V>
struct WeightedGap {
  static constexpr bool kActive = true;
  V operator()(V xv, V m, V e) const { return select(eq(e, V::zero()), V::zero(), e * (m - xv)); }
};

// Entropy of softmax of each of the `width` columns of x, in nats, into out[0, width):
// H = log(sum) + sum e (m - x) / sum, as entropy_row forms it.
template <class V, class VD>
void entropy_columns(const typename V::T* x, ptrdiff_t x_stride, typename V::T* out, ptrdiff_t n,
                     ptrdiff_t width, Workspace ws) {
  using T = typename V::T;
  ColumnArrays arrays(width, ws);
  const ColumnStats<V> st = column_stats<V, VD>(x, x_stride, n, width, arrays, WeightedGap<V>());
  double* log_sum = arrays.take<double>();
  column_log_sums<V, VD>(st, width, log_sum);
  for (ptrdiff_t j = 0; j < width; ++j) {
    if (st.finite(j)) {
      out[j] = T(log_sum[j] + st.extra[j] / st.sum(j));
    } else {
      Workspace left = ws;  // the same n entries for every special column
      T* col = take_scratch<T>(left, n);
      gather_column(x, x_stride, n, j, col);
      out[j] = T(entropy_row<V, VD, T>(col, nullptr, n));
    }
  }
}

// The plain cross-entropy (index targets; no label smoothing, soft targets, softcap or
// argmax) of each of the `width` columns of z, whose n entries are z_stride apart. Column j
// has target[j] (read only when counted[j]) and, with a gradient, grad_scale[j]; loss[j] and
// lse[j] receive its results as cross_entropy_row gives them, and grad (which may be z
// itself) its gradient, laid out like z with grad_stride.
template <class V, class VD>
void cross_entropy_columns(const typename V::T* z, ptrdiff_t z_stride, ptrdiff_t n,
                           ptrdiff_t width, const long long* target,
                           const unsigned char* counted, const double* grad_scale,
                           const CrossEntropyParams<typename V::T>& params, typename V::T* grad,
                           ptrdiff_t grad_stride, double* loss, double* lse, Workspace ws) {
  using T = typename V::T;
  const T* w_class = params.class_weight;
  ColumnArrays arrays(width, ws);
  const ColumnStats<V> st = take_column_stats<V>(arrays, false);
  T* nans = arrays.take<T>();
  column_max<V>(z, z_stride, n, width, st.max, nans);
  // Columns with a NaN or an infinite max go through the row kernel at the end, reading z:
  // with grad = z the sweeps leave them as they were (they get z and are scaled by 1).
  ptrdiff_t* special = arrays.take<ptrdiff_t>();
  ptrdiff_t specials = 0;
  for (ptrdiff_t j = 0; j < width; ++j) {
    if (!st.finite(j) || nans[j] != T(0)) special[specials++] = j;
  }
  const T* special_lane = specials ? special_lanes<T>(arrays, special, specials) : nullptr;
  auto is_special = [&](ptrdiff_t j) { return special_lane && special_lane[j] != T(0); };
  // The target logits, read before the gradient (which may be z) overwrites them.
  long long* t_row = arrays.take<long long>();
  double* z_target = arrays.take<double>();
  for (ptrdiff_t j = 0; j < width; ++j) {
    t_row[j] = !is_special(j) && counted[j] != 0 ? target[j] : -1;  // special: redone below
    if (t_row[j] >= 0) z_target[j] = double(z[t_row[j] * z_stride + j]);
  }
  // With a gradient the sweep stores the exponentials in it, to be scaled by p_factor below.
  // They are compensated then, and so are the sums without one: the loss does not depend on
  // whether the gradient was asked for.
  column_sums<V, VD>(z, z_stride, n, width, arrays, st, NoColumnExtra(), grad, grad_stride, true,
                     true, grad == z ? special_lane : nullptr);
  double* log_sum = arrays.take<double>();
  column_log_sums<V, VD>(st, width, log_sum);

  // Per column: the loss, and the gradient's factor of p_c and its target entry, whose
  // p_t - 1 is formed as expm1 in double vectors.
  T* p_factor = arrays.take_zeroed<T>();
  double* to_target = arrays.take_zeroed<double>();  // (z_t - m) - log(sum), when counted
  double* w_target = arrays.take<double>();
  for (ptrdiff_t j = 0; j < width; ++j) {
    if (is_special(j)) {
      p_factor[j] = T(1);
      continue;
    }
    lse[j] = double(st.max[j]) + log_sum[j];
    if (t_row[j] < 0) {
      loss[j] = 0.0;
      continue;
    }
    w_target[j] = w_class ? double(w_class[t_row[j]]) : 1.0;
    loss[j] = w_target[j] * ((double(st.max[j]) - z_target[j]) + log_sum[j]) +
              params.z_loss * lse[j] * lse[j];
    to_target[j] = (z_target[j] - double(st.max[j])) - log_sum[j];
    if (grad) {
      p_factor[j] =
          T(grad_scale[j] * (w_target[j] + 2.0 * params.z_loss * lse[j]) / st.sum(j));
    }
  }
  if (grad) {
    // An uncounted column's factor of 0 times a finite exponential gives 0.
    column_scale<V>(grad, grad_stride, n, width, p_factor);
    for (ptrdiff_t j = 0; j < width; j += VD::N) {
      alignas(64) double pt_minus_1[VD::N];
      expm1_(VD::load(to_target + j)).store(pt_minus_1);
      for (ptrdiff_t l = 0; l < VD::N && j + l < width; ++l) {
        const ptrdiff_t jl = j + l;
        if (t_row[jl] < 0) continue;
        const double pt = 1.0 + pt_minus_1[l];
        const double g = w_target[jl] * pt_minus_1[l] + 2.0 * params.z_loss * lse[jl] * pt;
        grad[t_row[jl] * grad_stride + jl] = T(grad_scale[jl] * g);
      }
    }
  }
  if (specials == 0) return;
  T* col = take_scratch<T>(ws, 2 * n);  // the row kernel takes what follows
  T* col_grad = grad ? col + n : nullptr;
  for (ptrdiff_t k = 0; k < specials; ++k) {
    const ptrdiff_t j = special[k];
    gather_column(z, z_stride, n, j, col);
    const bool count = counted[j] != 0;
    const CrossEntropyRow r = cross_entropy_row<V, VD>(
        col, n, count ? target[j] : -1, nullptr, count, params, grad ? grad_scale[j] : 0.0,
        col_grad, ws);
    loss[j] = r.loss;
    lse[j] = r.lse;
    if (grad) {
      for (ptrdiff_t c = 0; c < n; ++c) grad[c * grad_stride + j] = col_grad[c];
    }
  }
}

}  // namespace logitkit::LOGITKIT_ISA_NS

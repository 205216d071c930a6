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

// Entropy of softmax of each of the `width` columns of x, in nats, into out[0, width):
// H = log(sum) + sum e (m - x) / sum, as entropy_row forms it.
template <class V, class VD>
void entropy_columns(const typename V::T* x, ptrdiff_t x_stride, typename V::T* out, ptrdiff_t n,
                     ptrdiff_t width) {
  using T = typename V::T;
  constexpr ptrdiff_t kBlock = kStrips * V::N;
  for (ptrdiff_t j0 = 0; j0 < width; j0 += kBlock) {
    const ptrdiff_t w = std::min(kBlock, width - j0);
    WideSum<VD> gap[kStrips];
    auto weighted_gap = [&](int s, V xv, V m, V e) {
      // e * gap is 0 for entries far below the max (padding and -inf among them)
      gap[s].add(select(eq(e, V::zero()), V::zero(), e * (m - xv)));
    };
    ColumnStats<V> st;
    column_stats<V, VD>(x + j0, x_stride, n, w, st, weighted_gap);
    double log_sum[kBlock];
    column_log_sums<V, VD>(st, w, log_sum, false);
    alignas(64) double gap_lanes[2 * V::N];
    for (int s = 0; s * V::N < w; ++s) {
      gap[s].a0.store(gap_lanes);
      gap[s].a1.store(gap_lanes + VD::N);
      for (ptrdiff_t l = 0; l < strip_lanes<V>(w, s); ++l) {
        const ptrdiff_t j = s * V::N + l;
        if (st.finite(j)) {
          out[j0 + j] = T(log_sum[j] + gap_lanes[l] / st.sum(j));
        } else {
          T* col = row_scratch<T, 2>(n);
          gather_column(x + j0, x_stride, n, j, col);
          out[j0 + j] = T(entropy_row<V, VD>(col, nullptr, n));
        }
      }
    }
  }
}

// The plain cross-entropy (index targets; no label smoothing, soft targets, softcap or
// argmax) of each of the `width` columns of z, whose n entries are z_stride apart. Column j
// has target[j] (read only when counted[j]) and, with a gradient, grad_scale[j]; loss[j] and
// lse[j] receive its results as cross_entropy_row gives them (lse to the precision of T
// near 0, unless z_loss needs it in double), and grad (which may be z itself) its
// gradient, laid out like z with grad_stride.
template <class V, class VD>
void cross_entropy_columns(const typename V::T* z, ptrdiff_t z_stride, ptrdiff_t n,
                           ptrdiff_t width, const long long* target,
                           const unsigned char* counted, const double* grad_scale,
                           const CrossEntropyParams<typename V::T>& params, typename V::T* grad,
                           ptrdiff_t grad_stride, double* loss, double* lse) {
  using T = typename V::T;
  constexpr ptrdiff_t kBlock = kStrips * V::N;
  const T* w_class = params.class_weight;
  for (ptrdiff_t j0 = 0; j0 < width; j0 += kBlock) {
    const ptrdiff_t w = std::min(kBlock, width - j0);
    const T* zs = z + j0;
    ColumnStats<V> st;
    column_stats<V, VD>(zs, z_stride, n, w, st);
    // The loss adds log(sum) to gaps of its own sign; lse = max + log(sum) can cancel, and
    // only z_loss uses it here (the per-row lse of return_stats comes from the row path).
    double log_sum[kBlock];
    column_log_sums<V, VD>(st, w, log_sum, params.z_loss != 0);

    // Per column: the loss, and the gradient's factor of p_c and its target entry, whose
    // p_t - 1 is formed as expm1 in double vectors. Columns with a NaN or an infinite max go
    // through the row kernel, from a copy taken before the gradient overwrites anything.
    alignas(64) T m[kBlock] = {}, p_factor[kBlock] = {};
    alignas(64) double to_target[kBlock] = {};  // (z_t - m) - log(sum), when counted
    long long t_row[kBlock];
    double w_target[kBlock], z_target[kBlock];
    bool live[kBlock];
    bool special = false;
    for (ptrdiff_t j = 0; j < w; ++j) {
      const ptrdiff_t col = j0 + j;
      live[j] = st.finite(j) && !std::isnan(log_sum[j]);
      special = special || !live[j];
      const bool count = live[j] && counted[col] != 0;
      t_row[j] = count ? target[col] : -1;
      if (!live[j]) continue;  // redone below
      m[j] = st.max[j];
      lse[col] = double(st.max[j]) + log_sum[j];
      if (!count) {
        loss[col] = 0.0;
        continue;
      }
      z_target[j] = double(zs[t_row[j] * z_stride + j]);
      w_target[j] = w_class ? double(w_class[t_row[j]]) : 1.0;
      loss[col] = w_target[j] * ((double(st.max[j]) - z_target[j]) + log_sum[j]) +
                  params.z_loss * lse[col] * lse[col];
      to_target[j] = (z_target[j] - double(st.max[j])) - log_sum[j];
      if (grad) {
        p_factor[j] = T(grad_scale[col] * (w_target[j] + 2.0 * params.z_loss * lse[col]) /
                        st.sum(j));
      }
    }
    T* saved = nullptr;
    if (special) {
      saved = row_scratch<T, 2>((w + 1) * n);  // not the row kernel's slots
      for (ptrdiff_t j = 0; j < w; ++j) {
        if (live[j]) continue;
        gather_column(zs, z_stride, n, j, saved + j * n);
      }
    }
    if (grad) {
      T* gs = grad + j0;
      // Padding lanes and an uncounted column's factor of 0 times a finite exponential give 0.
      column_sweep<V>(zs, z_stride, gs, grad_stride, n, w, m, p_factor, false);
      for (ptrdiff_t j = 0; j < w; j += VD::N) {
        alignas(64) double pt_minus_1[VD::N];
        expm1_(VD::load(to_target + j)).store(pt_minus_1);
        for (ptrdiff_t l = 0; l < VD::N && j + l < w; ++l) {
          const ptrdiff_t jl = j + l;
          if (t_row[jl] < 0) continue;
          const double pt = 1.0 + pt_minus_1[l];
          const double g = w_target[jl] * pt_minus_1[l] + 2.0 * params.z_loss * lse[j0 + jl] * pt;
          gs[t_row[jl] * grad_stride + jl] = T(grad_scale[j0 + jl] * g);
        }
      }
    }
    if (special) {
      T* col_grad = grad ? saved + w * n : nullptr;
      for (ptrdiff_t j = 0; j < w; ++j) {
        if (live[j]) continue;
        const ptrdiff_t col = j0 + j;
        const bool count = counted[col] != 0;
        const CrossEntropyRow r = cross_entropy_row<V, VD>(
            saved + j * n, n, count ? target[col] : -1, nullptr, count, params,
            grad ? grad_scale[col] : 0.0, col_grad);
        loss[col] = r.loss;
        lse[col] = r.lse;
        if (grad) {
          for (ptrdiff_t c = 0; c < n; ++c) grad[j0 + c * grad_stride + j] = col_grad[c];
        }
      }
    }
  }
}

}  // namespace logitkit::LOGITKIT_ISA_NS

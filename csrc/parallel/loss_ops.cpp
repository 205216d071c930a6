// The losses and divergences: the fused cross-entropy over any layout the planner
// (layout.h) recognises, the divergences between softmax rows, and the binary cross-entropy.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "parallel/driver.h"
#include "parallel/schedule.h"

namespace logitkit::parallel {

using namespace detail;

template <class S>
void cross_entropy(const KernelSet<S>& k, const RowShape& shape, const StridedArray& z,
                   const StridedArray& soft, const StridedArray& grad,
                   const CrossEntropyRows& rows, const CrossEntropyParams<compute_t<S>>& params,
                   int threads) {
  using T = compute_t<S>;
  const bool has_soft = soft.data != nullptr, has_grad = grad.data != nullptr;
  // Plain rows (index targets, no smoothing, cap or argmax) have column kernels, as softmax
  // does (in the compute type: 16-bit strided rows are gathered, short ones converted in
  // their transposes); their per-row arrays need the columns to be consecutive rows.
  const bool by_columns = !has_soft && params.smoothing == 0 && !(params.softcap > 0) &&
                          !params.want_argmax && shape.n > 0;
  const RowPlan plan = plan_rows(shape, {&z, &soft, &grad}, z, has_grad ? &grad : nullptr,
                                 {std::is_same_v<S, T> && by_columns, by_columns, true});
  const ptrdiff_t n_rows = plan.rows, n = shape.n;
  if (n_rows == 0) return;
  const RowOffsets offsets(shape.outer, {&z, &soft, &grad});
  const bool contiguous = plan.contiguous;
  const S* zd = static_cast<const S*>(z.data);
  const T* sd = static_cast<const T*>(soft.data);
  S* gd = static_cast<S*>(grad.data);
  // Gathered rows: z and grad (S) and the soft targets (T), in a buffer of T.
  const ptrdiff_t row_buf = contiguous ? 0 : 3 * n;
  CrossEntropyParams<T> row_params = params;
  row_params.stream_grad = has_grad && contiguous && grad.data != z.data && streams<S>(n_rows * n);

  auto no_argmax = [&](ptrdiff_t first, ptrdiff_t count) {
    std::fill(rows.argmax + first, rows.argmax + first + count, -1LL);
  };
  if (plan.layout == Layout::columns) {
    const T* zc = static_cast<const T*>(z.data);
    T* gc = static_cast<T*>(grad.data);
    for_column_blocks<T>(
        shape, plan.column_axis, z, grad, threads,
        [&](ptrdiff_t zo, ptrdiff_t go, ptrdiff_t first, ptrdiff_t cols, T*, ptrdiff_t row) {
          k.cross_entropy_columns(zc + zo + first, z.axis_stride, n, cols, rows.target + row,
                                  rows.counted + row, has_grad ? rows.grad_scale + row : nullptr,
                                  params, has_grad ? gc + go + first : nullptr, grad.axis_stride,
                                  rows.loss + row, rows.lse + row, scratch<T>(n, cols));
          no_argmax(row, cols);
        });
    return;
  }
  if (plan.layout == Layout::short_rows) {
    for_short_row_blocks<T>(n_rows, n, threads, [&](ptrdiff_t first, ptrdiff_t count, T* in,
                                                    T* out, T* staging) {
      rows_to_columns(k, zd, offsets, 0, first, count, n, in, staging);
      k.cross_entropy_columns(in, count, n, count, rows.target + first, rows.counted + first,
                              has_grad ? rows.grad_scale + first : nullptr, params,
                              has_grad ? out : nullptr, count, rows.loss + first,
                              rows.lse + first, scratch<T>(n, count));
      no_argmax(first, count);
      if (!has_grad) return;
      columns_to_rows(k, out, gd, offsets, 2, first, count, n, staging);
    });
    return;
  }
  auto one_row = [&](ptrdiff_t r, T* buf, int /*row_threads*/) {
    const S* zr = zd + offsets.offset(0, r);
    const T* sr = has_soft ? sd + offsets.offset(1, r) : nullptr;
    S* gr = has_grad ? gd + offsets.offset(2, r) : nullptr;
    S* g_target = gr;
    if (!contiguous) {
      S* z_buf = reinterpret_cast<S*>(buf);
      gather(zr, z.axis_stride, n, z_buf);
      zr = z_buf;
      if (has_soft) {
        gather(sr, soft.axis_stride, n, buf + n);
        sr = buf + n;
      }
      if (has_grad) g_target = reinterpret_cast<S*>(buf + 2 * n);
    }
    const bool counted = rows.counted[r] != 0;
    const long long target = (has_soft || !counted) ? -1 : rows.target[r];
    const double scale = has_grad ? rows.grad_scale[r] : 0.0;
    const CrossEntropyRow res =
        k.cross_entropy_row(zr, n, target, sr, counted, row_params, scale, g_target,
                            scratch<T>(n, 0));
    if (has_grad && !contiguous) scatter(g_target, n, gr, grad.axis_stride);
    rows.loss[r] = res.loss;
    rows.lse[r] = res.lse;
    rows.argmax[r] = res.argmax;
  };
  // Rows are never shared between threads here: each is reduced by one thread.
  for_rows<T>(n_rows, threads_for(n_rows, n, threads), false, row_buf, one_row);
}

template <class S>
void divergence(const KernelSet<S>& k, ptrdiff_t rows, ptrdiff_t n, const S* zp, const S* zq,
                double beta, double* value, S* grad_p, S* grad_q, const double* scale,
                int threads) {
  const int team = static_cast<int>(std::min<ptrdiff_t>(threads_for(rows, n, threads), rows));
  auto at = [n](S* p, ptrdiff_t r) { return p ? p + r * n : p; };
#pragma omp parallel for num_threads(team) if (team > 1) schedule(guided)
  for (ptrdiff_t r = 0; r < rows; ++r) {
    value[r] = k.divergence_row(zp + r * n, zq + r * n, n, beta, at(grad_p, r), at(grad_q, r),
                                scale ? scale[r] : 0.0);
  }
}

template <class S>
double binary_cross_entropy(const KernelSet<S>& k, ptrdiff_t count, const S* x, const S* y,
                            const S* w, const S* pw, double smoothing, S* loss, S* grad,
                            const S* grad_scale, double scale, int threads) {
  std::vector<double> sums(static_cast<size_t>((count + kElementBlock - 1) / kElementBlock));
  auto at = [](auto* p, ptrdiff_t i) { return p ? p + i : p; };
  for_each_block(count, threads, [&](ptrdiff_t b, ptrdiff_t i, ptrdiff_t len) {
    sums[b] = k.bce_row(x + i, y + i, at(w, i), at(pw, i), len, smoothing, at(loss, i),
                        at(grad, i), at(grad_scale, i), scale);
  });
  double total = 0.0;
  for (double v : sums) total += v;
  return total;
}

template void cross_entropy<half_t>(const KernelSet<half_t>&, const RowShape&,
                                    const StridedArray&, const StridedArray&, const StridedArray&,
                                    const CrossEntropyRows&, const CrossEntropyParams<float>&,
                                    int);
template void cross_entropy<bf16_t>(const KernelSet<bf16_t>&, const RowShape&,
                                    const StridedArray&, const StridedArray&, const StridedArray&,
                                    const CrossEntropyRows&, const CrossEntropyParams<float>&,
                                    int);
template void cross_entropy<float>(const KernelSet<float>&, const RowShape&, const StridedArray&,
                                   const StridedArray&, const StridedArray&,
                                   const CrossEntropyRows&, const CrossEntropyParams<float>&, int);
template void cross_entropy<double>(const KernelSet<double>&, const RowShape&,
                                    const StridedArray&, const StridedArray&, const StridedArray&,
                                    const CrossEntropyRows&, const CrossEntropyParams<double>&,
                                    int);
template void divergence<half_t>(const KernelSet<half_t>&, ptrdiff_t, ptrdiff_t, const half_t*,
                                 const half_t*, double, double*, half_t*, half_t*, const double*,
                                 int);
template void divergence<bf16_t>(const KernelSet<bf16_t>&, ptrdiff_t, ptrdiff_t, const bf16_t*,
                                 const bf16_t*, double, double*, bf16_t*, bf16_t*, const double*,
                                 int);
template void divergence<float>(const KernelSet<float>&, ptrdiff_t, ptrdiff_t, const float*,
                                const float*, double, double*, float*, float*, const double*,
                                int);
template void divergence<double>(const KernelSet<double>&, ptrdiff_t, ptrdiff_t, const double*,
                                 const double*, double, double*, double*, double*, const double*,
                                 int);
template double binary_cross_entropy<half_t>(const KernelSet<half_t>&, ptrdiff_t, const half_t*,
                                             const half_t*, const half_t*, const half_t*, double,
                                             half_t*, half_t*, const half_t*, double, int);
template double binary_cross_entropy<bf16_t>(const KernelSet<bf16_t>&, ptrdiff_t, const bf16_t*,
                                             const bf16_t*, const bf16_t*, const bf16_t*, double,
                                             bf16_t*, bf16_t*, const bf16_t*, double, int);
template double binary_cross_entropy<float>(const KernelSet<float>&, ptrdiff_t, const float*,
                                            const float*, const float*, const float*, double,
                                            float*, float*, const float*, double, int);
template double binary_cross_entropy<double>(const KernelSet<double>&, ptrdiff_t, const double*,
                                             const double*, const double*, const double*, double,
                                             double*, double*, const double*, double, int);

}  // namespace logitkit::parallel

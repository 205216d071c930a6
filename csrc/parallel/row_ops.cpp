// The row operations: softmax and log_softmax (plain and masked), their gradients, hardmax,
// logsumexp and entropy, over any layout the planner (layout.h) recognises, and the long
// rows that several threads share.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "parallel/driver.h"
#include "parallel/schedule.h"

// The driver's own copy of the scalar merge code, compiled for the baseline target.
#define LOGITKIT_ISA_NS host
#include "kernels/combine.h"

namespace logitkit::parallel {

using namespace detail;

namespace {

// Statistics of a long row: fixed chunks, merged in chunk order. The chunking depends only
// on n, so the result is the same for any number of threads sharing the row.
template <class S>
RowStats<compute_t<S>> long_row_stats(const KernelSet<S>& k, const S* x, const S* b, ptrdiff_t n,
                                      int threads) {
  const ptrdiff_t chunk = chunk_elements<S>();
  const ptrdiff_t n_chunks = (n + chunk - 1) / chunk;
  std::vector<RowStats<compute_t<S>>> parts(static_cast<size_t>(n_chunks));
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(guided)
  for (ptrdiff_t c = 0; c < n_chunks; ++c) {
    const ptrdiff_t len = std::min(chunk, n - c * chunk);
    parts[c] = b ? k.weighted_stats(x + c * chunk, b + c * chunk, len) : k.stats(x + c * chunk, len);
  }
  return host::merge_stats(parts.data(), n_chunks);
}

// `stream` applies to log_softmax only (see row_map).
template <class S>
void softmax_contiguous_row(const KernelSet<S>& k, const S* x, S* y, ptrdiff_t n, bool log,
                            bool stream, int threads) {
  using T = compute_t<S>;
  if (n <= long_row_elements<S>()) {
    if (log) {
      k.log_softmax_row(x, y, n, stream);
    } else {
      k.softmax_row(x, y, n, scratch<T>(n, 0));
    }
    return;
  }
  const ptrdiff_t chunk = chunk_elements<S>();
  const ptrdiff_t n_chunks = (n + chunk - 1) / chunk;
  if (!log) {
    // The softmax_row scheme over chunks: each chunk stores exp(x - m_b) per block with the
    // statistics, and a second sweep (still in the last-level cache) scales each block to
    // the row's max and sum.
    //   Out of place the exponentials are stored in y: one exp per entry.
    //   In place they cannot be, since a row whose max turns out infinite or NaN needs x
    //   whole; the first sweep stores them in a chunk-sized per-thread buffer only for the
    //   statistics, and the second recomputes the chunk's (the same function of the same
    //   data, so the same bits) before scaling it into y. A row-sized scratch instead cost a
    //   zero-filled allocation of the whole row on one thread, and twice the row's memory:
    //   an in-place softmax of 2^31 float32 took 18.7 s, against 0.38 s for 1 GiB
    //   (`python benchmarks/huge_arrays.py`).
    //   A 16-bit y cannot hold them at full precision: it takes the in-place scheme.
    const bool inplace = is_storage16<S> || static_cast<const void*>(x) == y;
    constexpr ptrdiff_t block = kStatsBlockBytes / static_cast<ptrdiff_t>(sizeof(T));
    const ptrdiff_t per_chunk = chunk / block;
    std::vector<T> block_max(static_cast<size_t>(n_chunks * per_chunk));
    std::vector<RowStats<T>> parts(static_cast<size_t>(n_chunks));
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
      std::unique_ptr<T[]> local(inplace ? new T[static_cast<size_t>(chunk)] : nullptr);
#pragma omp for schedule(guided)
      for (ptrdiff_t c = 0; c < n_chunks; ++c) {
        const ptrdiff_t len = std::min(chunk, n - c * chunk);
        T* exps = inplace ? local.get() : reinterpret_cast<T*>(y) + c * chunk;
        parts[c] = k.stats_store(x + c * chunk, exps, len, block_max.data() + c * per_chunk);
      }
    }
    const RowStats<T> s = host::merge_stats(parts.data(), n_chunks);
    if (!std::isfinite(s.max)) {
      k.softmax_special(x, y, n, false);
      return;
    }
    const double coeff = 1.0 / (s.at_max + s.rest);
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
      std::unique_ptr<T[]> local(inplace ? new T[static_cast<size_t>(chunk)] : nullptr);
#pragma omp for schedule(guided)
      for (ptrdiff_t c = 0; c < n_chunks; ++c) {
        const ptrdiff_t len = std::min(chunk, n - c * chunk);
        T* chunk_max = block_max.data() + c * per_chunk;
        const T* exps = reinterpret_cast<const T*>(y) + c * chunk;
        if (inplace) {
          k.stats_store(x + c * chunk, local.get(), len, chunk_max);
          exps = local.get();
        }
        k.scale_blocks(exps, y + c * chunk, len, chunk_max, s.max, coeff, false);
      }
    }
    return;
  }
  // log_softmax: the statistics, then (x - max) - log(sum), with no exp in the second sweep.
  const RowStats<T> s = long_row_stats(k, x, static_cast<const S*>(nullptr), n, threads);
  if (!std::isfinite(s.max)) {
    k.softmax_special(x, y, n, true);
    return;
  }
  const T offset = T(host::log_abs_sum(s.at_max, s.rest).value);
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(guided)
  for (ptrdiff_t c = 0; c < n_chunks; ++c) {
    const ptrdiff_t len = std::min(chunk, n - c * chunk);
    k.sub_shift(x + c * chunk, y + c * chunk, len, s.max, offset, stream);
  }
}

template <class S>
LseResult logsumexp_contiguous_row(const KernelSet<S>& k, const S* x, const S* b, ptrdiff_t n,
                                   int threads) {
  if (n <= long_row_elements<S>()) return k.logsumexp_row(x, b, n);
  const RowStats<compute_t<S>> s = long_row_stats(k, x, b, n, threads);
  if (!std::isfinite(s.max)) return k.logsumexp_special(x, b, n);
  return host::finish_logsumexp(s);
}

}  // namespace

template <class S>
void row_map(const KernelSet<S>& k, RowOp op, const RowShape& shape, const StridedArray& x,
             const StridedArray& aux, const StridedArray& y, int threads) {
  using T = compute_t<S>;
  const bool has_aux = aux.data != nullptr;
  const bool plain_softmax = (op == RowOp::softmax || op == RowOp::log_softmax) && !has_aux;
  // The column kernels read their operands in place in the compute type: 16-bit strided
  // rows are gathered instead. Short 16-bit rows are converted in their transposes.
  const RowPlan plan = plan_rows(shape, {&x, &y, &aux}, x, &y,
                                 {std::is_same_v<S, T> && plain_softmax, plain_softmax, false});
  const ptrdiff_t rows = plan.rows, n = shape.n;
  if (rows == 0 || n == 0) return;
  const RowOffsets offsets(shape.outer, {&x, &y, &aux});
  const bool contiguous = plan.contiguous;
  const S* xd = static_cast<const S*>(x.data);
  const S* ad = static_cast<const S*>(aux.data);
  S* yd = static_cast<S*>(y.data);
  const int nt = threads_for(rows, n, threads);
  const bool log = op == RowOp::log_softmax || op == RowOp::log_softmax_backward;
  // Only plain softmax shares a long row between threads; the other operations are rarely
  // applied to rows that long.
  const bool split_rows = plain_softmax && nt > 1 && rows < nt && n > long_row_elements<S>();
  if (plan.layout == Layout::columns) {
    const T* xc = static_cast<const T*>(x.data);
    T* yc = static_cast<T*>(y.data);
    for_column_blocks<T>(shape, plan.column_axis, x, y, threads,
                         [&](ptrdiff_t xo, ptrdiff_t yo, ptrdiff_t first, ptrdiff_t cols, T*,
                             ptrdiff_t) {
                           k.softmax_columns(xc + xo + first, x.axis_stride, yc + yo + first,
                                             y.axis_stride, n, cols, log, scratch<T>(n, cols));
                         });
    return;
  }
  if (plan.layout == Layout::short_rows) {
    for_short_row_blocks<T>(rows, n, threads,
                            [&](ptrdiff_t first, ptrdiff_t count, T* in, T* out, T* staging) {
                              rows_to_columns(k, xd, offsets, 0, first, count, n, in, staging);
                              k.softmax_columns(in, count, out, count, n, count, log,
                                                scratch<T>(n, count));
                              columns_to_rows(k, out, yd, offsets, 1, first, count, n, staging);
                            });
    return;
  }
  const ptrdiff_t row_buf = contiguous ? 0 : n * (has_aux ? 2 : 1);
  // In place, the output's lines are already cached by the read: nothing to save. Measured
  // on an AVX2 machine with 2 cores (`python -m logitkit bench --ops softmax,log_softmax
  // --modes out`, with lk._core.set_stream_min_bytes raised to turn streaming off), streaming
  // helped log_softmax, whose final sweep computes as it writes, and slowed softmax, whose
  // final sweep only scales cached values and so sends the whole row to memory in one burst.
  // The same on a Xeon with AVX-512 (2 threads, out=, medians of 5 rounds): log_softmax on
  // 512x32000 7.03 -> 5.06 ms streamed; softmax with its exponentials kept in the scratch row
  // and the scaling sweep streamed, 5.47 -> 6.10 ms there and 1.02 -> 1.48 ms on 4096x1000.
  const bool stream = contiguous && log && y.data != x.data && streams<S>(rows * n);

  auto one_row = [&](ptrdiff_t r, S* buf, int row_threads) {
    const S* xr = xd + offsets.offset(0, r);
    S* yr = yd + offsets.offset(1, r);
    const S* ar = has_aux ? ad + offsets.offset(2, r) : nullptr;
    S* target = yr;
    if (!contiguous) {
      gather(xr, x.axis_stride, n, buf);
      xr = target = buf;
      if (has_aux) {
        gather(ar, aux.axis_stride, n, buf + n);
        ar = buf + n;
      }
    }
    switch (op) {
      case RowOp::softmax:
      case RowOp::log_softmax:
        if (has_aux) {
          k.masked_softmax_row(xr, ar, target, n, log);
        } else {
          softmax_contiguous_row(k, xr, target, n, log, stream, row_threads);
        }
        break;
      case RowOp::softmax_backward:
      case RowOp::log_softmax_backward:
        k.softmax_backward_row(xr, ar, target, n, log);
        break;
      case RowOp::hardmax:
        k.hardmax_row(xr, target, n);
        break;
    }
    if (!contiguous) scatter(buf, n, yr, y.axis_stride);
  };

  for_rows<S>(rows, nt, split_rows, row_buf, one_row);
}

// out and sign are in the compute type.
template <class S>
void reduce_rows(const KernelSet<S>& k, RowReduction op, const RowShape& shape,
                 const StridedArray& x, const StridedArray& b, const StridedArray& out,
                 const StridedArray& sign, int threads) {
  using T = compute_t<S>;
  const bool weighted = b.data != nullptr;
  // Without weights, a mask or a sign, both reductions have column kernels (in the compute
  // type: 16-bit strided rows are gathered, short ones converted in their transposes).
  const bool by_columns = !weighted && !sign.data && shape.n > 0;
  const RowPlan plan = plan_rows(shape, {&x, &b}, x, nullptr,
                                 {std::is_same_v<S, T> && by_columns, by_columns, false});
  const ptrdiff_t rows = plan.rows, n = shape.n;
  if (rows == 0) return;
  const RowOffsets offsets(shape.outer, {&x, &b, &out, &sign});
  const bool contiguous = plan.contiguous;
  const S* xd = static_cast<const S*>(x.data);
  const S* bd = static_cast<const S*>(b.data);
  T* od = static_cast<T*>(out.data);
  T* sd = static_cast<T*>(sign.data);
  const ptrdiff_t row_buf = contiguous ? 0 : n * (weighted ? 2 : 1);
  const int nt = threads_for(rows, n, threads);
  const bool split_rows =
      op == RowReduction::logsumexp && nt > 1 && rows < nt && n > long_row_elements<S>();
  const auto columns =
      op == RowReduction::logsumexp ? k.logsumexp_columns : k.entropy_columns;
  if (plan.layout == Layout::columns) {
    const int d = plan.column_axis;
    const T* xc = static_cast<const T*>(x.data);
    const ptrdiff_t out_stride = out.outer_strides[d];
    for_column_blocks<T>(
        shape, d, x, out, threads,
        [&](ptrdiff_t xo, ptrdiff_t oo, ptrdiff_t first, ptrdiff_t cols, T* buf, ptrdiff_t) {
          T* o = od + oo + first * out_stride;
          T* values = out_stride == 1 ? o : buf;
          columns(xc + xo + first, x.axis_stride, values, n, cols, scratch<T>(n, cols));
          if (out_stride != 1) scatter(values, cols, o, out_stride);
        });
    return;
  }
  if (plan.layout == Layout::short_rows) {
    for_short_row_blocks<T>(rows, n, threads, [&](ptrdiff_t first, ptrdiff_t count, T* in, T* res,
                                                  T* staging) {
      rows_to_columns(k, xd, offsets, 0, first, count, n, in, staging);
      columns(in, count, res, n, count, scratch<T>(n, count));
      for (ptrdiff_t r = 0; r < count; ++r) od[offsets.offset(2, first + r)] = res[r];
    });
    return;
  }

  auto one_row = [&](ptrdiff_t r, S* buf, int row_threads) {
    const S* xr = xd + offsets.offset(0, r);
    const S* br = weighted ? bd + offsets.offset(1, r) : nullptr;
    if (!contiguous) {
      gather(xr, x.axis_stride, n, buf);
      xr = buf;
      if (weighted) {
        gather(br, b.axis_stride, n, buf + n);
        br = buf + n;
      }
    }
    LseResult res{-std::numeric_limits<double>::infinity(), 0.0};
    if (op == RowReduction::entropy) {
      res = {n == 0 ? 0.0 : k.entropy_row(xr, br, n), 1.0};  // empty: the empty sum
    } else if (n > 0) {
      res = logsumexp_contiguous_row(k, xr, br, n, row_threads);
    }
    if (!sd && res.sign < 0) res.value = std::numeric_limits<double>::quiet_NaN();
    od[offsets.offset(2, r)] = T(res.value);
    if (sd) sd[offsets.offset(3, r)] = T(res.sign);
  };

  for_rows<S>(rows, nt, split_rows, row_buf, one_row);
}

template void row_map<half_t>(const KernelSet<half_t>&, RowOp, const RowShape&,
                              const StridedArray&, const StridedArray&, const StridedArray&, int);
template void row_map<bf16_t>(const KernelSet<bf16_t>&, RowOp, const RowShape&,
                              const StridedArray&, const StridedArray&, const StridedArray&, int);
template void reduce_rows<half_t>(const KernelSet<half_t>&, RowReduction, const RowShape&,
                                  const StridedArray&, const StridedArray&, const StridedArray&,
                                  const StridedArray&, int);
template void reduce_rows<bf16_t>(const KernelSet<bf16_t>&, RowReduction, const RowShape&,
                                  const StridedArray&, const StridedArray&, const StridedArray&,
                                  const StridedArray&, int);
template void row_map<float>(const KernelSet<float>&, RowOp, const RowShape&, const StridedArray&,
                             const StridedArray&, const StridedArray&, int);
template void row_map<double>(const KernelSet<double>&, RowOp, const RowShape&,
                              const StridedArray&, const StridedArray&, const StridedArray&, int);
template void reduce_rows<float>(const KernelSet<float>&, RowReduction, const RowShape&,
                                 const StridedArray&, const StridedArray&, const StridedArray&,
                                 const StridedArray&, int);
template void reduce_rows<double>(const KernelSet<double>&, RowReduction, const RowShape&,
                                  const StridedArray&, const StridedArray&, const StridedArray&,
                                  const StridedArray&, int);

}  // namespace logitkit::parallel

#include "parallel/driver.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <utility>

#if defined(_OPENMP)
#include <omp.h>
#endif

// The driver's own copy of the scalar merge code, compiled for the baseline target.
#define LOGITKIT_ISA_NS host
#include "kernels/combine.h"

namespace logitkit::parallel {

namespace {

using std::ptrdiff_t;

// 16 MiB: half of this machine class's last-level cache, which the input shares.
std::atomic<ptrdiff_t> g_stream_min_bytes{ptrdiff_t(16) << 20};

template <class T>
bool streams(ptrdiff_t elements) {
  return elements * static_cast<ptrdiff_t>(sizeof(T)) >= g_stream_min_bytes.load();
}

int thread_id() {
#if defined(_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Maps a row number to the element offset of that row in each operand. Adjacent outer axes
// that are laid out contiguously in every operand are merged first, so the common cases
// (C-contiguous and simple slices) cost one multiplication per row.
class RowOffsets {
 public:
  RowOffsets(const std::vector<ptrdiff_t>& shape, const std::vector<const StridedArray*>& ops)
      : strides_(ops.size()) {
    auto stride = [&](size_t k, size_t d) -> ptrdiff_t {
      return ops[k]->data ? ops[k]->outer_strides[d] : 0;
    };
    for (size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] == 1) continue;
      bool mergeable = !dims_.empty();
      for (size_t k = 0; mergeable && k < ops.size(); ++k) {
        mergeable = strides_[k].back() == shape[d] * stride(k, d);
      }
      if (mergeable) {
        dims_.back() *= shape[d];
        for (size_t k = 0; k < ops.size(); ++k) strides_[k].back() = stride(k, d);
      } else {
        dims_.push_back(shape[d]);
        for (size_t k = 0; k < ops.size(); ++k) strides_[k].push_back(stride(k, d));
      }
    }
  }

  // True when the rows of operand `op` lie `step` elements apart (one merged axis, or none).
  bool uniform(size_t op, ptrdiff_t& step) const {
    if (dims_.size() > 1) return false;
    step = dims_.empty() ? 0 : strides_[op][0];
    return true;
  }

  // The outermost axis takes what is left of row without a division: with one merged axis
  // (the common case) an offset is one multiplication, which short rows feel.
  ptrdiff_t offset(size_t op, ptrdiff_t row) const {
    if (dims_.empty()) return 0;
    ptrdiff_t off = 0;
    for (size_t d = dims_.size() - 1; d > 0; --d) {
      off += (row % dims_[d]) * strides_[op][d];
      row /= dims_[d];
    }
    return off + row * strides_[op][0];
  }

 private:
  std::vector<ptrdiff_t> dims_;
  std::vector<std::vector<ptrdiff_t>> strides_;  // per operand, per merged axis
};

ptrdiff_t product(const std::vector<ptrdiff_t>& v) {
  ptrdiff_t p = 1;
  for (ptrdiff_t s : v) p *= s;
  return p;
}

// Row lengths are measured in the compute type, so that a 16-bit row is cut where the same
// row in float32 is: its results are float32's, rounded once.
template <class S>
constexpr ptrdiff_t long_row_elements() {
  return kLongRowBytes / static_cast<ptrdiff_t>(sizeof(compute_t<S>));
}

template <class S>
constexpr ptrdiff_t chunk_elements() {
  return kChunkBytes / static_cast<ptrdiff_t>(sizeof(compute_t<S>));
}

template <class T>
void gather(const T* src, ptrdiff_t stride, ptrdiff_t n, T* dst) {
  for (ptrdiff_t i = 0; i < n; ++i) dst[i] = src[i * stride];
}

template <class T>
void scatter(const T* src, ptrdiff_t n, T* dst, ptrdiff_t stride) {
  for (ptrdiff_t i = 0; i < n; ++i) dst[i * stride] = src[i];
}

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
      k.softmax_row(x, y, n);
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
    //   an in-place softmax of 2^31 float32 took 18.7 s, against 0.38 s for 1 GiB.
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

// Every parallel loop here is scheduled `guided`: a thread that starts late or is slowed by
// another process leaves its share to the others, which on a shared machine made many short
// items (the blocks of short rows) up to a fifth faster than equal static shares. Each item's
// result depends only on its index, so the schedule changes no result.

// Threads go to rows when there are enough rows; otherwise to the chunks of each row.
int threads_for(ptrdiff_t rows, ptrdiff_t n, int threads) {
  if (rows * n < kSerialWork) return 1;
  return threads;
}

// Runs one_row(r, buffer, row_threads) for every row: either the rows one after another,
// each shared by all threads (split_rows), or the rows spread over a team of threads. Each
// thread gets its own buffer of row_buf elements for gathering strided rows.
template <class T, class OneRow>
void for_rows(ptrdiff_t rows, int threads, bool split_rows, ptrdiff_t row_buf,
              OneRow&& one_row) {
  if (split_rows) {
    std::vector<T> buf(static_cast<size_t>(row_buf));
    for (ptrdiff_t r = 0; r < rows; ++r) one_row(r, buf.data(), threads);
    return;
  }
  const int team = static_cast<int>(std::min<ptrdiff_t>(threads, rows));
  std::vector<T> bufs(static_cast<size_t>(row_buf) * team);
#pragma omp parallel num_threads(team) if (team > 1)
  {
    T* buf = bufs.data() + static_cast<size_t>(row_buf) * thread_id();
#pragma omp for schedule(guided)
    for (ptrdiff_t r = 0; r < rows; ++r) one_row(r, buf, 1);
  }
}

// Elementwise work in fixed blocks: the blocking depends only on the size, so per-block sums
// added in block order do not depend on the thread count.
constexpr ptrdiff_t kElementBlock = 1 << 14;

template <class Fn>
void for_each_block(ptrdiff_t count, int threads, Fn&& fn) {
  const ptrdiff_t blocks = (count + kElementBlock - 1) / kElementBlock;
  const int nt = count < kSerialWork ? 1 : static_cast<int>(std::min<ptrdiff_t>(threads, blocks));
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(guided)
  for (ptrdiff_t b = 0; b < blocks; ++b) {
    fn(b, b * kElementBlock, std::min(kElementBlock, count - b * kElementBlock));
  }
}

// ---- rows that are columns: the reduction axis is not the contiguous one ----------------

// An outer axis along which x (and y, when given) are contiguous: its entries become the
// lanes of the column kernels. -1 when there is none.
int contiguous_outer_axis(const RowShape& shape, const StridedArray& x, const StridedArray* y) {
  for (size_t d = shape.outer.size(); d-- > 0;) {
    if (shape.outer[d] > 1 && x.outer_strides[d] == 1 && (!y || y->outer_strides[d] == 1)) {
      return static_cast<int>(d);
    }
  }
  return -1;
}

// Columns per work item. The column kernels read each row of their block whole, so wider
// blocks make longer contiguous reads; the accumulators their sweeps update (20 bytes a
// column for float) should stay in L1, and all their per-column arrays (up to 112 bytes a
// column) in L2; and every thread should have an item, the same share of the columns where
// a slab has to be split. The split depends on the thread count, which changes no result:
// a column's result does not depend on the block it is in.
template <class T>
ptrdiff_t column_chunk(ptrdiff_t slabs, ptrdiff_t width, int threads) {
  constexpr ptrdiff_t kMaxColumns = 1024, kMinColumns = 64, kAlign = 16;
  ptrdiff_t pieces = (width + kMaxColumns - 1) / kMaxColumns;
  if (slabs * pieces < threads) pieces = (threads + slabs - 1) / slabs;
  if (slabs == 1 && pieces > 1) pieces = (pieces + threads - 1) / threads * threads;
  const ptrdiff_t share = (width + pieces - 1) / pieces;
  return std::min(width, std::max(kMinColumns, (share + kAlign - 1) / kAlign * kAlign));
}

// Row numbers (in the row-major order of the outer axes) as an operand of RowOffsets, for
// the per-row arrays of the cross-entropy.
StridedArray row_numbers(const std::vector<ptrdiff_t>& outer) {
  static char any;  // RowOffsets only asks whether an operand has data
  StridedArray a;
  a.data = &any;
  a.outer_strides.resize(outer.size());
  ptrdiff_t step = 1;
  for (size_t d = outer.size(); d-- > 0;) {
    a.outer_strides[d] = step;
    step *= outer[d];
  }
  return a;
}

// Runs fn(x_offset, y_offset, first_column, columns, buffer, first_row) over every slab of the
// other outer axes and every chunk of columns along axis d; buffer holds a chunk's worth of T
// for the calling thread, and first_row is the row number of the chunk's first column (the
// next columns' rows follow at the stride of axis d in row_numbers).
template <class T, class Fn>
void for_column_blocks(const RowShape& shape, int d, const StridedArray& x, const StridedArray& y,
                       int threads, Fn&& fn) {
  std::vector<ptrdiff_t> slab_shape = shape.outer;
  const ptrdiff_t width = slab_shape[d];
  slab_shape[d] = 1;
  const StridedArray numbers = row_numbers(shape.outer);
  const RowOffsets offsets(slab_shape, {&x, &y, &numbers});
  const ptrdiff_t slabs = product(slab_shape);
  const int nt = threads_for(slabs * width, shape.n, threads);
  const ptrdiff_t chunk = column_chunk<T>(slabs, width, nt);
  const ptrdiff_t per_slab = (width + chunk - 1) / chunk;
  const ptrdiff_t items = slabs * per_slab;
  const ptrdiff_t row_step = numbers.outer_strides[d];
  for_rows<T>(items, nt, false, chunk, [&](ptrdiff_t item, T* buf, int) {
    const ptrdiff_t slab = item / per_slab, first = (item % per_slab) * chunk;
    fn(offsets.offset(0, slab), offsets.offset(1, slab), first, std::min(chunk, width - first),
       buf, offsets.offset(2, slab) + first * row_step);
  });
}

// Many short contiguous rows: blocks of rows are transposed into a scratch block, whose
// columns are then the rows, so that the vectors run across rows.
constexpr ptrdiff_t kShortRow = 16, kShortRowBlock = 256;

// Between rows [first, first + count) of operand `op`, each n long, and the columns of
// `block`: entry c of row first + r is block[c * count + r]. Rows the same distance apart
// (nearly always) take the kernels' transpose in registers when they are at least a vector
// long, and otherwise a loop unrolled for their length, a few times faster than the general
// one on these short rows.
template <int N, bool kToColumns, class T>
void transpose_uniform(T* rows, ptrdiff_t step, ptrdiff_t count, T* block) {
  for (ptrdiff_t r = 0; r < count; ++r) {
    T* row = rows + r * step;
    for (int c = 0; c < N; ++c) {
      if (kToColumns) {
        block[c * count + r] = row[c];
      } else {
        row[c] = block[c * count + r];
      }
    }
  }
}

template <bool kToColumns, class T, int... Ns>
bool transpose_short(T* rows, ptrdiff_t step, ptrdiff_t count, ptrdiff_t n, T* block,
                     std::integer_sequence<int, Ns...>) {
  return ((n == Ns + 1 ? (transpose_uniform<Ns + 1, kToColumns>(rows, step, count, block), true)
                       : false) ||
          ...);
}

template <bool kToColumns, class S, class T = compute_t<S>>
void transpose_block(const KernelSet<S>& k, T* rows, ptrdiff_t step, ptrdiff_t count, ptrdiff_t n,
                     T* block) {
  if (n >= k.transpose_min_n) {
    if (kToColumns) {
      k.rows_to_columns(rows, step, count, n, block);
    } else {
      k.columns_to_rows(block, rows, step, count, n);
    }
    return;
  }
  transpose_short<kToColumns>(rows, step, count, n, block,
                              std::make_integer_sequence<int, kShortRow>{});
}

template <bool kToColumns, class T>
void transpose_rows(const KernelSet<T>& k, T* base, const RowOffsets& offsets, size_t op,
                    ptrdiff_t first, ptrdiff_t count, ptrdiff_t n, T* block) {
  ptrdiff_t step = 0;
  if (offsets.uniform(op, step) && (n >= k.transpose_min_n || n <= kShortRow)) {
    transpose_block<kToColumns>(k, base + first * step, step, count, n, block);
    return;
  }
  for (ptrdiff_t r = 0; r < count; ++r) {
    T* row = base + offsets.offset(op, first + r);
    for (ptrdiff_t c = 0; c < n; ++c) {
      if (kToColumns) {
        block[c * count + r] = row[c];
      } else {
        row[c] = block[c * count + r];
      }
    }
  }
}

// Rows [first, first + count) of operand `op` into `staging`, n apart, in the compute type;
// and back.
template <class S>
void widen_rows(const KernelSet<S>& k, const S* base, const RowOffsets& offsets, size_t op,
                ptrdiff_t first, ptrdiff_t count, ptrdiff_t n, compute_t<S>* staging) {
  ptrdiff_t step = 0;
  if (offsets.uniform(op, step) && step == n) {
    k.widen_row(base + first * n, staging, count * n);
    return;
  }
  for (ptrdiff_t r = 0; r < count; ++r) {
    k.widen_row(base + offsets.offset(op, first + r), staging + r * n, n);
  }
}

template <class S>
void narrow_rows(const KernelSet<S>& k, const compute_t<S>* staging, S* base,
                 const RowOffsets& offsets, size_t op, ptrdiff_t first, ptrdiff_t count,
                 ptrdiff_t n) {
  ptrdiff_t step = 0;
  if (offsets.uniform(op, step) && step == n) {
    k.narrow_row(staging, base + first * n, count * n);
    return;
  }
  for (ptrdiff_t r = 0; r < count; ++r) {
    k.narrow_row(staging + r * n, base + offsets.offset(op, first + r), n);
  }
}

// Between rows of S and the columns of a compute-type block. 16-bit rows are converted
// through `staging` (a block's worth), as rows n apart, so that the transposes and the column
// kernels see float32 only.
template <class S>
void rows_to_columns(const KernelSet<S>& k, const S* base, const RowOffsets& offsets, size_t op,
                     ptrdiff_t first, ptrdiff_t count, ptrdiff_t n, compute_t<S>* block,
                     compute_t<S>* staging) {
  if constexpr (std::is_same_v<S, compute_t<S>>) {
    transpose_rows<true>(k, const_cast<S*>(base), offsets, op, first, count, n, block);
  } else {
    widen_rows(k, base, offsets, op, first, count, n, staging);
    transpose_block<true>(k, staging, n, count, n, block);
  }
}

template <class S>
void columns_to_rows(const KernelSet<S>& k, const compute_t<S>* block, S* base,
                     const RowOffsets& offsets, size_t op, ptrdiff_t first, ptrdiff_t count,
                     ptrdiff_t n, compute_t<S>* staging) {
  using T = compute_t<S>;
  if constexpr (std::is_same_v<S, T>) {
    transpose_rows<false>(k, base, offsets, op, first, count, n, const_cast<T*>(block));
  } else {
    transpose_block<false>(k, staging, n, count, n, const_cast<T*>(block));
    narrow_rows(k, staging, base, offsets, op, first, count, n);
  }
}

// Runs fn(first_row, rows_in_block, in, out, staging) for every block of short rows, with in,
// out and staging three blocks' worth of the compute type for the calling thread.
template <class T, class Fn>
void for_short_row_blocks(ptrdiff_t rows, ptrdiff_t n, int threads, Fn&& fn) {
  const ptrdiff_t blocks = (rows + kShortRowBlock - 1) / kShortRowBlock;
  const ptrdiff_t block_elements = kShortRowBlock * n;
  for_rows<T>(blocks, threads_for(rows, n, threads), false, 3 * block_elements,
              [&](ptrdiff_t b, T* buf, int) {
                const ptrdiff_t first = b * kShortRowBlock;
                fn(first, std::min(kShortRowBlock, rows - first), buf, buf + block_elements,
                   buf + 2 * block_elements);
              });
}

}  // namespace

template <class S>
void row_map(const KernelSet<S>& k, RowOp op, const RowShape& shape, const StridedArray& x,
             const StridedArray& aux, const StridedArray& y, int threads) {
  using T = compute_t<S>;
  const ptrdiff_t rows = product(shape.outer), n = shape.n;
  if (rows == 0 || n == 0) return;
  const RowOffsets offsets(shape.outer, {&x, &y, &aux});
  const bool has_aux = aux.data != nullptr;
  const bool contiguous =
      x.axis_stride == 1 && y.axis_stride == 1 && (!has_aux || aux.axis_stride == 1);
  const S* xd = static_cast<const S*>(x.data);
  const S* ad = static_cast<const S*>(aux.data);
  S* yd = static_cast<S*>(y.data);
  const int nt = threads_for(rows, n, threads);
  const bool plain_softmax = (op == RowOp::softmax || op == RowOp::log_softmax) && !has_aux;
  const bool log = op == RowOp::log_softmax || op == RowOp::log_softmax_backward;
  // Only plain softmax shares a long row between threads; the other operations are rarely
  // applied to rows that long.
  const bool split_rows = plain_softmax && nt > 1 && rows < nt && n > long_row_elements<S>();
  // The column kernels read their operands in place, in the compute type: 16-bit columns
  // take the gathered rows below.
  if (std::is_same_v<S, T> && plain_softmax && !contiguous && rows > 1) {
    const int d = contiguous_outer_axis(shape, x, &y);
    if (d >= 0) {
      const T* xc = static_cast<const T*>(x.data);
      T* yc = static_cast<T*>(y.data);
      for_column_blocks<T>(shape, d, x, y, threads,
                           [&](ptrdiff_t xo, ptrdiff_t yo, ptrdiff_t first, ptrdiff_t cols, T*,
                               ptrdiff_t) {
                             k.softmax_columns(xc + xo + first, x.axis_stride, yc + yo + first,
                                               y.axis_stride, n, cols, log);
                           });
      return;
    }
  }
  if (plain_softmax && contiguous && n <= kShortRow && rows >= kShortRowBlock) {
    for_short_row_blocks<T>(rows, n, threads,
                            [&](ptrdiff_t first, ptrdiff_t count, T* in, T* out, T* staging) {
                              rows_to_columns(k, xd, offsets, 0, first, count, n, in, staging);
                              k.softmax_columns(in, count, out, count, n, count, log);
                              columns_to_rows(k, out, yd, offsets, 1, first, count, n, staging);
                            });
    return;
  }
  const ptrdiff_t row_buf = contiguous ? 0 : n * (has_aux ? 2 : 1);
  // In place, the output's lines are already cached by the read: nothing to save. Measured
  // on an AVX2 machine with 2 cores (benchmarks/), streaming helped log_softmax, whose final
  // sweep computes as it writes, and slowed softmax, whose final sweep only scales cached
  // values and so sends the whole row to memory in one burst.
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
  const ptrdiff_t rows = product(shape.outer), n = shape.n;
  if (rows == 0) return;
  const RowOffsets offsets(shape.outer, {&x, &b, &out, &sign});
  const bool weighted = b.data != nullptr;
  const bool contiguous = x.axis_stride == 1 && (!weighted || b.axis_stride == 1);
  const S* xd = static_cast<const S*>(x.data);
  const S* bd = static_cast<const S*>(b.data);
  T* od = static_cast<T*>(out.data);
  T* sd = static_cast<T*>(sign.data);
  const ptrdiff_t row_buf = contiguous ? 0 : n * (weighted ? 2 : 1);
  const int nt = threads_for(rows, n, threads);
  const bool split_rows =
      op == RowReduction::logsumexp && nt > 1 && rows < nt && n > long_row_elements<S>();
  // Without weights, a mask or a sign, both reductions have column kernels.
  const bool by_columns = !weighted && !sd && n > 0;
  const auto columns =
      op == RowReduction::logsumexp ? k.logsumexp_columns : k.entropy_columns;
  if (std::is_same_v<S, T> && by_columns && !contiguous && rows > 1) {
    const int d = contiguous_outer_axis(shape, x, nullptr);
    if (d >= 0) {
      const T* xc = static_cast<const T*>(x.data);
      const ptrdiff_t out_stride = out.outer_strides[d];
      for_column_blocks<T>(
          shape, d, x, out, threads,
          [&](ptrdiff_t xo, ptrdiff_t oo, ptrdiff_t first, ptrdiff_t cols, T* buf, ptrdiff_t) {
            T* o = od + oo + first * out_stride;
            T* values = out_stride == 1 ? o : buf;
            columns(xc + xo + first, x.axis_stride, values, n, cols);
            if (out_stride != 1) scatter(values, cols, o, out_stride);
          });
      return;
    }
  }
  if (by_columns && contiguous && n <= kShortRow && rows >= kShortRowBlock) {
    for_short_row_blocks<T>(rows, n, threads, [&](ptrdiff_t first, ptrdiff_t count, T* in, T* res,
                                                  T* staging) {
      rows_to_columns(k, xd, offsets, 0, first, count, n, in, staging);
      columns(in, count, res, n, count);
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

template <class S>
void cross_entropy(const KernelSet<S>& k, const RowShape& shape, const StridedArray& z,
                   const StridedArray& soft, const StridedArray& grad,
                   const CrossEntropyRows& rows, const CrossEntropyParams<compute_t<S>>& params,
                   int threads) {
  using T = compute_t<S>;
  const ptrdiff_t n_rows = product(shape.outer), n = shape.n;
  if (n_rows == 0) return;
  const RowOffsets offsets(shape.outer, {&z, &soft, &grad});
  const bool has_soft = soft.data != nullptr, has_grad = grad.data != nullptr;
  const bool contiguous = z.axis_stride == 1 && (!has_soft || soft.axis_stride == 1) &&
                          (!has_grad || grad.axis_stride == 1);
  const S* zd = static_cast<const S*>(z.data);
  const T* sd = static_cast<const T*>(soft.data);
  S* gd = static_cast<S*>(grad.data);
  // Gathered rows: z and grad (S) and the soft targets (T), in a buffer of T.
  const ptrdiff_t row_buf = contiguous ? 0 : 3 * n;
  CrossEntropyParams<T> row_params = params;
  row_params.stream_grad = has_grad && contiguous && grad.data != z.data && streams<S>(n_rows * n);

  // Plain rows (index targets, no smoothing, cap or argmax) that are columns, or short:
  // vectors across rows, as for softmax.
  const bool by_columns = !has_soft && params.smoothing == 0 && !(params.softcap > 0) &&
                          !params.want_argmax && n > 0;
  auto no_argmax = [&](ptrdiff_t first, ptrdiff_t count) {
    std::fill(rows.argmax + first, rows.argmax + first + count, -1LL);
  };
  if (std::is_same_v<S, T> && by_columns && !contiguous && n_rows > 1) {
    const T* zc = static_cast<const T*>(z.data);
    T* gc = static_cast<T*>(grad.data);
    const int d = contiguous_outer_axis(shape, z, has_grad ? &grad : nullptr);
    // The per-row arrays are indexed by row number: the columns must be consecutive rows,
    // which they are when d is the last outer axis of more than one element.
    bool consecutive = d >= 0;
    for (size_t e = static_cast<size_t>(d) + 1; consecutive && e < shape.outer.size(); ++e) {
      consecutive = shape.outer[e] == 1;
    }
    if (consecutive) {
      for_column_blocks<T>(
          shape, d, z, grad, threads,
          [&](ptrdiff_t zo, ptrdiff_t go, ptrdiff_t first, ptrdiff_t cols, T*, ptrdiff_t row) {
            k.cross_entropy_columns(zc + zo + first, z.axis_stride, n, cols, rows.target + row,
                                    rows.counted + row, has_grad ? rows.grad_scale + row : nullptr,
                                    params, has_grad ? gc + go + first : nullptr,
                                    grad.axis_stride, rows.loss + row, rows.lse + row);
            no_argmax(row, cols);
          });
      return;
    }
  }
  if (by_columns && contiguous && n <= kShortRow && n_rows >= kShortRowBlock) {
    for_short_row_blocks<T>(n_rows, n, threads, [&](ptrdiff_t first, ptrdiff_t count, T* in,
                                                    T* out, T* staging) {
      rows_to_columns(k, zd, offsets, 0, first, count, n, in, staging);
      k.cross_entropy_columns(in, count, n, count, rows.target + first, rows.counted + first,
                              has_grad ? rows.grad_scale + first : nullptr, params,
                              has_grad ? out : nullptr, count, rows.loss + first,
                              rows.lse + first);
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
        k.cross_entropy_row(zr, n, target, sr, counted, row_params, scale, g_target);
    if (has_grad && !contiguous) scatter(g_target, n, gr, grad.axis_stride);
    rows.loss[r] = res.loss;
    rows.lse[r] = res.lse;
    rows.argmax[r] = res.argmax;
  };
  // Rows are never shared between threads here: each is reduced by one thread.
  for_rows<T>(n_rows, threads_for(n_rows, n, threads), false, row_buf, one_row);
}

template <class T>
void divergence(const KernelSet<T>& k, ptrdiff_t rows, ptrdiff_t n, const T* zp, const T* zq,
                double beta, double* value, T* grad_p, T* grad_q, const double* scale,
                int threads) {
  const int team = static_cast<int>(std::min<ptrdiff_t>(threads_for(rows, n, threads), rows));
  auto at = [n](T* p, ptrdiff_t r) { return p ? p + r * n : p; };
#pragma omp parallel for num_threads(team) if (team > 1) schedule(guided)
  for (ptrdiff_t r = 0; r < rows; ++r) {
    value[r] = k.divergence_row(zp + r * n, zq + r * n, n, beta, at(grad_p, r), at(grad_q, r),
                                scale ? scale[r] : 0.0);
  }
}

template <class T>
double binary_cross_entropy(const KernelSet<T>& k, ptrdiff_t count, const T* x, const T* y,
                            const T* w, const T* pw, double smoothing, T* loss, T* grad,
                            const T* grad_scale, double scale, int threads) {
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

template <class T>
void unary(const KernelSet<T>& k, UnaryOp op, const T* x, T* y, ptrdiff_t count, int threads) {
  const auto fn = k.unary[op];
  // Elementwise outputs are written with plain stores: streaming measured no faster (see
  // row_map), the write-backs of plain stores overlapping the arithmetic of later blocks.
  for_each_block(count, threads,
                 [&](ptrdiff_t, ptrdiff_t i, ptrdiff_t len) { fn(x + i, y + i, len); });
}

double bandwidth_read(const BandwidthKernels<float>& k, const float* x, ptrdiff_t count,
                      int threads) {
  std::vector<double> sums(static_cast<size_t>((count + kElementBlock - 1) / kElementBlock));
  for_each_block(count, threads, [&](ptrdiff_t b, ptrdiff_t i, ptrdiff_t len) {
    sums[b] = k.read_sum(x + i, len);
  });
  double total = 0.0;
  for (double v : sums) total += v;
  return total;
}

void bandwidth_copy(const BandwidthKernels<float>& k, const float* x, float* y, ptrdiff_t count,
                    bool stream, int threads) {
  for_each_block(count, threads,
                 [&](ptrdiff_t, ptrdiff_t i, ptrdiff_t len) { k.copy(x + i, y + i, len, stream); });
}

template <class S>
void widen(const KernelSet<S>& k, const S* src, compute_t<S>* dst, ptrdiff_t count, int threads) {
  for_each_block(count, threads,
                 [&](ptrdiff_t, ptrdiff_t i, ptrdiff_t len) { k.widen_row(src + i, dst + i, len); });
}

template <class S>
void narrow(const KernelSet<S>& k, const compute_t<S>* src, S* dst, ptrdiff_t count,
            int threads) {
  for_each_block(count, threads,
                 [&](ptrdiff_t, ptrdiff_t i, ptrdiff_t len) { k.narrow_row(src + i, dst + i, len); });
}

ptrdiff_t stream_min_bytes() { return g_stream_min_bytes.load(); }
void set_stream_min_bytes(ptrdiff_t bytes) { g_stream_min_bytes.store(bytes); }

template <class T>
void binary(const KernelSet<T>& k, BinaryOp op, const T* a, const T* b, T* y, ptrdiff_t count,
            int threads) {
  const auto fn = k.binary[op];
  for_each_block(count, threads,
                 [&](ptrdiff_t, ptrdiff_t i, ptrdiff_t len) { fn(a + i, b + i, y + i, len); });
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
template void cross_entropy<half_t>(const KernelSet<half_t>&, const RowShape&,
                                    const StridedArray&, const StridedArray&, const StridedArray&,
                                    const CrossEntropyRows&, const CrossEntropyParams<float>&,
                                    int);
template void cross_entropy<bf16_t>(const KernelSet<bf16_t>&, const RowShape&,
                                    const StridedArray&, const StridedArray&, const StridedArray&,
                                    const CrossEntropyRows&, const CrossEntropyParams<float>&,
                                    int);
template void unary<half_t>(const KernelSet<half_t>&, UnaryOp, const half_t*, half_t*, ptrdiff_t,
                            int);
template void unary<bf16_t>(const KernelSet<bf16_t>&, UnaryOp, const bf16_t*, bf16_t*, ptrdiff_t,
                            int);
template void widen<half_t>(const KernelSet<half_t>&, const half_t*, float*, ptrdiff_t, int);
template void widen<bf16_t>(const KernelSet<bf16_t>&, const bf16_t*, float*, ptrdiff_t, int);
template void narrow<half_t>(const KernelSet<half_t>&, const float*, half_t*, ptrdiff_t, int);
template void narrow<bf16_t>(const KernelSet<bf16_t>&, const float*, bf16_t*, ptrdiff_t, int);
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
template void cross_entropy<float>(const KernelSet<float>&, const RowShape&, const StridedArray&,
                                   const StridedArray&, const StridedArray&,
                                   const CrossEntropyRows&, const CrossEntropyParams<float>&, int);
template void cross_entropy<double>(const KernelSet<double>&, const RowShape&,
                                    const StridedArray&, const StridedArray&, const StridedArray&,
                                    const CrossEntropyRows&, const CrossEntropyParams<double>&,
                                    int);
template void divergence<float>(const KernelSet<float>&, ptrdiff_t, ptrdiff_t, const float*,
                                const float*, double, double*, float*, float*, const double*,
                                int);
template void divergence<double>(const KernelSet<double>&, ptrdiff_t, ptrdiff_t, const double*,
                                 const double*, double, double*, double*, double*, const double*,
                                 int);
template double binary_cross_entropy<float>(const KernelSet<float>&, ptrdiff_t, const float*,
                                            const float*, const float*, const float*, double,
                                            float*, float*, const float*, double, int);
template double binary_cross_entropy<double>(const KernelSet<double>&, ptrdiff_t, const double*,
                                             const double*, const double*, const double*, double,
                                             double*, double*, const double*, double, int);
template void binary<float>(const KernelSet<float>&, BinaryOp, const float*, const float*,
                            float*, ptrdiff_t, int);
template void binary<double>(const KernelSet<double>&, BinaryOp, const double*, const double*,
                             double*, ptrdiff_t, int);
template void unary<float>(const KernelSet<float>&, UnaryOp, const float*, float*, ptrdiff_t, int);
template void unary<double>(const KernelSet<double>&, UnaryOp, const double*, double*, ptrdiff_t,
                            int);

}  // namespace logitkit::parallel
